"""The router's configuration: deployments (providers with keys), prices, retry settings.

    router:
      providers:
        openai:    {kind: openai}                      # key from $OPENAI_API_KEY
        anthropic: {kind: anthropic, apiKeyFile: /run/credentials/agentflowd/anthropic}
        local:     {kind: local, baseUrl: "http://127.0.0.1:11434/v1", trusted: true}
      prices:
        local/llama-3-8b: {input: 0, output: 0}        # USD per million tokens
      unknownPrice: highest                            # or refuse
      mockWhenUnconfigured: false
      maxAttempts: 2
      maxWait: 10                                      # seconds: a longer Retry-After falls back
      timeout: 120

``openai``, ``anthropic``, ``local`` and ``mock`` exist without being listed. A key comes from
``apiKeyEnv`` (default ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``), or ``apiKeyFile``, or the
systemd credential of the deployment's name in ``$CREDENTIALS_DIRECTORY``; keys are never
logged or shown. A deployment without its key (or a ``local`` one without ``baseUrl``) is not
configured: its routes are dropped, or, with ``mockWhenUnconfigured``, answered by the mock
provider under its name, labelled ``mock`` in every answer and ledger record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.errors import ConfigError
from router.pricing import PriceBook, Rates, rates_from_override
from router.ratelimit import RateLimits

if TYPE_CHECKING:
    from router.router import Router

__all__ = ["DeploymentConfig", "RouterConfig", "build_router", "load_config"]

KINDS = ("openai", "anthropic", "local", "mock")
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "openai": {"kind": "openai"},
    "anthropic": {"kind": "anthropic"},
    "local": {"kind": "local"},
    "mock": {"kind": "mock"},
}


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig:
    """One provider endpoint."""

    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    trusted: bool = False
    timeout: float | None = None
    rpm: int | None = None  # requests per minute (headers correct it)
    tpm: int | None = None  # tokens per minute

    def __repr__(self) -> str:  # never the key itself (it is not even held here)
        return (
            f"DeploymentConfig(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"
        )


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    """The ``router:`` section, checked."""

    deployments: tuple[DeploymentConfig, ...]
    prices: Mapping[tuple[str, str], Rates] = field(default_factory=dict)
    unknown_price: str = "highest"
    mock_when_unconfigured: bool = False
    max_attempts: int = 2
    max_wait: float = 10.0
    timeout: float = 120.0


def load_config(data: Mapping[str, Any] | None) -> RouterConfig:
    """Check and convert a ``router:`` mapping (None: the defaults)."""
    data = dict(data or {})
    known = {
        "providers",
        "prices",
        "unknownPrice",
        "mockWhenUnconfigured",
        "maxAttempts",
        "maxWait",
        "timeout",
    }
    for key in data:
        if key not in known:
            raise ConfigError(f"router.{key}: unknown setting (known: {', '.join(sorted(known))})")
    raw = {**_DEFAULTS, **(data.get("providers") or {})}
    deployments = []
    for name, spec in raw.items():
        spec = dict(spec or {})
        kind = spec.pop("kind", name if name in KINDS else None)
        if kind not in KINDS:
            raise ConfigError(f"router.providers.{name}.kind: one of {', '.join(KINDS)}")
        allowed = {"baseUrl", "apiKeyEnv", "apiKeyFile", "trusted", "timeout", "rpm", "tpm"}
        for key in spec:
            if key not in allowed:
                raise ConfigError(
                    f"router.providers.{name}.{key}: unknown setting "
                    f"(known: kind, {', '.join(sorted(allowed))})"
                )
        deployments.append(
            DeploymentConfig(
                name=str(name),
                kind=str(kind),
                base_url=spec.get("baseUrl"),
                api_key_env=spec.get("apiKeyEnv", _KEY_ENV.get(str(kind))),
                api_key_file=spec.get("apiKeyFile"),
                trusted=bool(spec.get("trusted", False)),
                timeout=float(spec["timeout"]) if spec.get("timeout") is not None else None,
                rpm=_positive(spec.get("rpm"), f"router.providers.{name}.rpm"),
                tpm=_positive(spec.get("tpm"), f"router.providers.{name}.tpm"),
            )
        )
    kinds = {d.name for d in deployments}
    prices: dict[tuple[str, str], Rates] = {}
    for route, spec in (data.get("prices") or {}).items():
        deployment, sep, model = str(route).partition("/")
        if not sep or deployment not in kinds:
            raise ConfigError(
                f"router.prices.{route}: write DEPLOYMENT/MODEL with a configured deployment"
            )
        try:
            prices[(deployment, model)] = rates_from_override(spec)
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise ConfigError(f"router.prices.{route}: {exc}") from exc
    unknown = data.get("unknownPrice", "highest")
    if unknown not in ("highest", "refuse"):
        raise ConfigError("router.unknownPrice: 'highest' or 'refuse'")
    return RouterConfig(
        deployments=tuple(deployments),
        prices=prices,
        unknown_price=str(unknown),
        mock_when_unconfigured=bool(data.get("mockWhenUnconfigured", False)),
        max_attempts=int(data.get("maxAttempts", 2)),
        max_wait=float(data.get("maxWait", 10.0)),
        timeout=float(data.get("timeout", 120.0)),
    )


def _positive(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: a positive whole number")
    return value


def _key(deployment: DeploymentConfig, env: Mapping[str, str]) -> str | None:
    if deployment.api_key_file:
        try:
            return Path(deployment.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(
                f"router.providers.{deployment.name}.apiKeyFile: cannot read it ({exc.strerror})"
            ) from exc
    if deployment.api_key_env and env.get(deployment.api_key_env):
        return env[deployment.api_key_env].strip()
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / deployment.name).is_file():
        return (Path(creds) / deployment.name).read_text(encoding="utf-8").strip() or None
    return None


def unconfigured_reason(deployment: DeploymentConfig, env: Mapping[str, str]) -> str | None:
    """Why ``deployment`` cannot be used as configured (None: it can)."""
    if deployment.kind == "mock":
        return None
    if deployment.kind == "local":
        return None if deployment.base_url else "no baseUrl"
    if _key(deployment, env) is None:
        source = deployment.api_key_file or deployment.api_key_env or "a key"
        return f"no API key ({source})"
    return None


def build_router(
    config: RouterConfig,
    *,
    env: Mapping[str, str] | None = None,
    client: Any = None,
    **router_kwargs: Any,
) -> tuple[Router, dict[str, str]]:
    """The :class:`~router.router.Router` for ``config``, and the deployments not configured
    (name -> why; answered by the mock when ``mock_when_unconfigured``)."""
    import httpx

    from router.providers.anthropic import AnthropicProvider
    from router.providers.mock import MockProvider
    from router.providers.openai import OpenAIProvider
    from router.router import Router as RouterClass

    env = os.environ if env is None else env
    http = client or httpx.Client(
        timeout=config.timeout, limits=httpx.Limits(max_connections=100), trust_env=False
    )
    providers: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for d in config.deployments:
        why = unconfigured_reason(d, env)
        if why is not None:
            missing[d.name] = why
            if config.mock_when_unconfigured:
                providers[d.name] = MockProvider(d.name)
            continue
        if d.kind == "mock":
            providers[d.name] = MockProvider(d.name)
        elif d.kind == "anthropic":
            base = d.base_url or "https://api.anthropic.com"
            key = _key(d, env) or ""
            providers[d.name] = AnthropicProvider(d.name, base_url=base, api_key=key, client=http)
        else:
            base = d.base_url or "https://api.openai.com/v1"
            providers[d.name] = OpenAIProvider(
                d.name, base_url=base, api_key=_key(d, env), client=http, kind=d.kind
            )
    limits = {d.name: (d.rpm, d.tpm) for d in config.deployments if d.rpm or d.tpm}
    router = RouterClass(
        providers,
        rate_limits=RateLimits(limits),
        trusted=[d.name for d in config.deployments if d.trusted],
        prices=PriceBook(overrides=dict(config.prices)),
        unknown_price=config.unknown_price,
        max_attempts=config.max_attempts,
        max_wait=config.max_wait,
        timeout=config.timeout,
        unconfigured={} if config.mock_when_unconfigured else missing,
        **router_kwargs,
    )
    return router, missing
