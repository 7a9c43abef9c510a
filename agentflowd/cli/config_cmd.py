"""``agentflow config set|get`` and ``agentflow auth login``: the CLI's own settings.

They live in ``$XDG_CONFIG_HOME/agentflow/config.yaml`` (``~/.config/agentflow/config.yaml``),
written 0600. Known keys: ``api.endpoint`` (the daemon's URL; ``--server`` and
``$AGENTFLOW_API_URL`` win over it) and ``api.key`` (sent as ``Authorization: Bearer``; set it
with ``auth login``, which never echoes it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["auth_app", "config_app", "config_path", "read_settings", "store_settings"]

KEYS = ("api.endpoint", "api.key")

config_app = typer.Typer(help="The CLI's settings (api.endpoint, api.key).", no_args_is_help=True)
auth_app = typer.Typer(help="Credentials for the agentflowd API.", no_args_is_help=True)


def config_path() -> Path:
    """Where the settings live."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agentflow" / "config.yaml"


def read_settings() -> dict[str, str]:
    """The settings (empty when there is no file)."""
    from agentflowd.manifest.yamlread import read_yaml

    path = config_path()
    if not path.is_file():
        return {}
    result = read_yaml(path.read_bytes(), str(path))
    data: Any = result.documents[0].data if result.documents and not result.fatal else {}
    return {str(k): str(v) for k, v in (data or {}).items()} if isinstance(data, dict) else {}


def _write(settings: dict[str, str]) -> None:
    import json

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"{k}: {json.dumps(v)}" for k, v in sorted(settings.items())]  # JSON is YAML
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)


def store_settings(changes: dict[str, str]) -> None:
    """Set some settings, keeping the others."""
    settings = read_settings()
    settings.update(changes)
    _write(settings)


def _known(key: str) -> str:
    if key not in KEYS:
        raise typer.BadParameter(f"{key!r} is not a setting (known: {', '.join(KEYS)})")
    return key


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Set a setting, e.g. ``agentflow config set api.endpoint https://agentflow.example.com``."""
    settings = read_settings()
    settings[_known(key)] = value
    _write(settings)
    typer.echo(f"{key} set in {config_path()}")


@config_app.command("get")
def config_get(key: Annotated[str | None, typer.Argument()] = None) -> None:
    """Print a setting (or all of them; the API key is never printed whole)."""
    settings = read_settings()
    for name in [_known(key)] if key else sorted(settings):
        value = settings.get(name)
        if value is None:
            raise typer.Exit(1)
        shown = value[:4] + "…" if name == "api.key" else value
        typer.echo(f"{name}: {shown}" if key is None else shown)


@auth_app.command("login")
def login(
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            "--token",
            help="An API key (afk_...) or an OIDC token (a JWT); asked for when neither this "
            "nor --oidc is given.",
        ),
    ] = None,
    oidc: Annotated[
        bool,
        typer.Option(
            "--oidc", help="Sign in with the daemon's identity provider (a URL and a code)."
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option("--server", "-s", envvar="AGENTFLOW_API_URL", help="agentflowd's API URL."),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Check it with the daemon first (recorded in the audit log).")
    ] = True,
) -> None:
    """Store credentials for the CLI (0600, never echoed), after checking them with the daemon.

    Examples: agentflow auth login (asks for a key); agentflow auth login --oidc (opens a
    sign-in at the identity provider the daemon trusts: visit the URL, enter the code).
    """
    from agentflowd.client import AgentFlowClient, ServerUnavailable
    from agentflowd.errors import AccessError, AgentFlowError

    settings = read_settings()
    url = server or os.environ.get("AGENTFLOW_API_URL") or settings.get("api.endpoint")
    if oidc:
        try:
            token = _oidc_token(url)
        except AgentFlowError as exc:
            typer.echo(f"agentflow auth login: {exc}", err=True)
            raise typer.Exit(1) from exc
    else:
        token = (key or typer.prompt("API key or OIDC token", hide_input=True)).strip()
    if verify:
        try:
            with AgentFlowClient(url, api_key=token) as client:
                who = client.login()
        except AccessError as exc:
            typer.echo(f"agentflow auth login: {exc}; nothing stored", err=True)
            raise typer.Exit(1) from exc
        except ServerUnavailable as exc:
            typer.echo(f"agentflow auth login: stored unchecked ({exc})", err=True)
        else:
            scope = f", limited to {who['workflows']}" if who.get("workflows") else ""
            typer.echo(f"signed in as {who['actor']} ({who['role']}{scope})")
    settings["api.key"] = token
    _write(settings)
    typer.echo(f"credentials stored in {config_path()}")


def _oidc_token(url: str | None) -> str:
    """The device flow against the provider the daemon at ``url`` names."""
    import httpx

    from agentflowd.cli.oidc_login import DeviceCode, device_login
    from agentflowd.client import AgentFlowClient

    with AgentFlowClient(url) as client:
        provider = client.oidc_provider()

    def show(code: DeviceCode) -> None:
        where = code.verification_uri_complete or code.verification_uri
        typer.echo(f"Open {where} and enter the code {code.user_code}", err=True)
        typer.echo(
            f"(waiting for the sign-in; the code is good for {code.expires_in:.0f} s)", err=True
        )

    with httpx.Client(timeout=10.0) as http:
        return device_login(
            provider["issuer"], provider["client_id"], scope=provider["scope"], http=http, show=show
        )


@auth_app.command("whoami")
def whoami(
    server: Annotated[
        str | None,
        typer.Option("--server", "-s", envvar="AGENTFLOW_API_URL", help="agentflowd's API URL."),
    ] = None,
) -> None:
    """Who the stored credentials say you are, and your role."""
    from agentflowd.cli.output import Output, api_errors, emit
    from agentflowd.client import AgentFlowClient

    settings = read_settings()
    url = server or os.environ.get("AGENTFLOW_API_URL") or settings.get("api.endpoint")
    key = os.environ.get("AGENTFLOW_API_KEY") or settings.get("api.key")
    with api_errors("auth whoami"), AgentFlowClient(url, api_key=key) as client:
        emit(client.whoami(), Output.YAML)
