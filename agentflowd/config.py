"""The daemon's configuration: one model, filled from a YAML file, ``AGENTFLOW_*`` variables and
command-line flags, in that order of precedence (a flag beats a variable beats the file).

Keys are the flags' names in snake case: ``--state-dir`` is ``state_dir:`` in the file and
``AGENTFLOW_STATE_DIR`` in the environment. Unknown keys are errors (a misspelled key must not
silently fall back to a default), reported with the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentflowd.auth.oidc import OidcSettings
from agentflowd.errors import UsageError
from agentflowd.manifest.model import Duration, HostPattern
from agentflowd.manifest.yamlread import read_yaml

__all__ = ["DaemonConfig", "StatusTarget", "load_config"]

ENV_PREFIX = "AGENTFLOW_"


class StatusTarget(BaseModel):
    """A forge repository to post commit statuses to (besides the git notes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forge: Literal["github", "gitlab", "gitea"]
    url: str = Field(description="API base: https://api.github.com, https://gitlab.example.com")
    repo: str = Field(description="owner/name (GitHub, Gitea) or group/sub/project (GitLab)")
    token_file: Path | None = None
    token_env: str | None = Field(default=None, description="Variable holding the token.")

    def token(self) -> str:
        """The token, read now; never logged."""
        if self.token_file is not None:
            try:
                value = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UsageError(
                    f"statuses: cannot read {self.token_file}: {exc.strerror}"
                ) from exc
        else:
            value = os.environ.get(self.token_env or "", "").strip()
        if not value:
            raise UsageError(
                f"statuses: no token for {self.forge} {self.repo} (set token_file or token_env)"
            )
        return value


class DaemonConfig(BaseModel):
    """Everything ``agentflowd serve`` needs to know."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="Local path or URL (file://, https://, ssh://) of the git repo.")
    branch: str = "main"
    path: str = Field(default="", description="Sub-directory of the repo holding manifests.")
    state_dir: Path = Field(default=Path(".agentflow"))
    database: str | None = Field(
        default=None, description="SQLite path or postgresql:// URL; default STATE_DIR/agentflow.db"
    )
    listen: str = "127.0.0.1:8080"
    api_url: str | None = Field(
        default=None, description="Public base URL of the API, for status links."
    )
    poll_interval: Duration = Field(default="60s", validate_default=True)
    prune: bool = True
    validate_refs: tuple[str, ...] = Field(
        default=(), description="Ref patterns validated but never applied (refs/heads/*)."
    )
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    push_notes: bool = Field(
        default=False, description="Push refs/notes/agentflow back to a remote repository."
    )
    statuses: tuple[StatusTarget, ...] = ()
    webhook_secret_file: Path | None = None
    router: dict[str, Any] = Field(
        default_factory=dict,
        description="LLM deployments, price overrides and retry settings (docs/router.md).",
    )
    workers: int = Field(
        default=8, ge=1, le=256, description="Agent steps run at the same time (threads)."
    )
    isolation: Literal["auto", "process", "thread"] = Field(
        default="auto",
        description="Where component agents run: worker processes, daemon threads, or auto "
        "(a thread when no other step runs, else a process).",
    )
    warm_python: bool = Field(
        default=True,
        description="Build and compile the Python agent runtime at start, not at the first step.",
    )
    llm_mock: bool = Field(
        default=False,
        description="Answer the routes of unconfigured LLM providers with the mock provider.",
    )
    lease: Duration = Field(
        default="10s",
        validate_default=True,
        description="Several daemons on one PostgreSQL: how long a node's and the leader's "
        "leases last; a dead node's work is taken over this long after its last renewal.",
    )
    bootstrap_key_file: Path | None = Field(
        default=None,
        description="A file holding an API key (afk_...) made an admin key named 'bootstrap' at "
        "start: a fresh installation's first credential (make one: agentflowd keys token).",
    )
    oidc: OidcSettings | None = Field(
        default=None,
        description="Sign-in with bearer JWTs of an OIDC issuer (docs/security.md); file only.",
    )
    audit_retention: str = Field(
        default="365d",
        description="How long audit rows are kept (e.g. 90d, 2w); older ones are pruned daily.",
    )
    api_network_ceiling: tuple[HostPattern, ...] = Field(
        default=(),
        description="Hosts a workflow deployed through the API may allow its agents to reach "
        "(patterns as network.allow: api.example.com, *.example.com:443); default none.",
    )
    metrics_auth: bool = Field(
        default=False, description="Ask a viewer's credentials for /metrics (else it is open)."
    )
    node_name: str | None = Field(
        default=None,
        max_length=80,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Names this daemon among others (default: the host name); a pid and a "
        "random part are added, so each start is a new node.",
    )

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=5):
            raise ValueError("lease must be between 1s and 5m")
        return value

    @field_validator("audit_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        from agentflowd.auth.keys import parse_expiry

        try:
            parse_expiry(value)
        except UsageError as exc:
            raise ValueError(str(exc).replace("expires", "audit_retention", 1)) from exc
        return value

    @property
    def audit_retention_delta(self) -> timedelta:
        """How long audit rows are kept."""
        from agentflowd.auth.keys import parse_expiry

        return parse_expiry(self.audit_retention)

    @field_validator("router")
    @classmethod
    def _router_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        from router import ConfigError
        from router.config import load_config as load_router_config

        try:
            load_router_config(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    def public_view(self) -> dict[str, Any]:
        """The settings as an admin may read them (``GET /api/v1/settings``): secrets are only
        ever named here (files, variables), but a password in the database URL is masked, and
        any value under a key that reads like a secret is too."""
        view = self.model_dump(mode="json")
        if view.get("database"):
            view["database"] = _mask_url(view["database"])
        masked: dict[str, Any] = _masked(view)
        return masked

    @property
    def database_url(self) -> str:
        """The database to open (SQLite in the state directory unless told otherwise)."""
        return self.database or str(self.state_dir / "agentflow.db")

    @property
    def host(self) -> str:
        """The address to bind."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind (0 picks a free one)."""
        return int(self.listen.rpartition(":")[2])

    @property
    def poll_seconds(self) -> float:
        """The poll interval in seconds."""
        value = self.poll_interval
        return value.total_seconds() if isinstance(value, timedelta) else float(value)


_SECRETISH = ("secret", "token", "password", "apikey", "api_key")
_NAMES_A_SECRET = ("file", "env", "ref")  # a key that says where a secret is, not the secret


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    lowered = key.lower().replace("-", "_")
    if (
        isinstance(value, str)
        and any(s in lowered for s in _SECRETISH)
        and not lowered.endswith(_NAMES_A_SECRET)
    ):
        return "***"
    return value


def _mask_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in DaemonConfig.model_fields:
        value = environ.get(ENV_PREFIX + key.upper())
        if value is None:
            continue
        if key in ("validate_refs", "api_network_ceiling"):
            out[key] = tuple(v for v in value.replace(",", " ").split() if v)
        elif key == "statuses":
            continue  # a list of mappings: config file only
        elif key in ("router", "oidc"):
            continue  # a mapping: config file only
        elif key in ("prune", "push_notes", "llm_mock", "warm_python", "metrics_auth"):
            out[key] = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            out[key] = value
    return out


def load_config(
    *,
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> DaemonConfig:
    """Merge file < environment < flags; raise :class:`UsageError` naming what is wrong."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise UsageError(f"{file}: cannot read config: {exc.strerror}") from exc
        result = read_yaml(data, str(file))
        if result.fatal or any(d.diagnostics for d in result.documents):
            first = (result.diagnostics or result.documents[0].diagnostics)[0]
            raise UsageError(first.format())
        if result.documents:
            doc = result.documents[0].data
            if not isinstance(doc, dict):
                raise UsageError(f"{file}: the config is a mapping of keys to values")
            values.update({str(k).replace("-", "_"): v for k, v in doc.items()})
    values.update(_from_env(os.environ if environ is None else environ))
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return DaemonConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        source = f"{file}: " if file is not None else ""
        raise UsageError(f"{source}{where}: {err['msg']}") from exc
