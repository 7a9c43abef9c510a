"""``agentflow keys create|list|revoke`` and ``agentflow audit``: administration through the
API (an admin's credentials). On the daemon's host, ``agentflowd keys`` does the same against
the database directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from agentflowd.cli.output import Column, Output, api_errors, emit
from agentflowd.cli.remote import OutputOpt, Server, _client

__all__ = ["audit", "keys_app", "settings"]

keys_app = typer.Typer(help="API keys (admin).", no_args_is_help=True)

KEY_COLUMNS: list[Column] = [
    ("name", lambda k: k["name"] + (" (revoked)" if k["revoked_at"] else "")),
    ("id", lambda k: k["id"]),
    ("role", lambda k: k["role"]),
    ("workflows", lambda k: k["workflows"] or "*"),
    ("expires", lambda k: (k["expires_at"] or "never")[:19]),
    ("last used", lambda k: (k["last_used_at"] or "-")[:19]),
]
AUDIT_COLUMNS: list[Column] = [
    ("at", lambda e: e["at"][:19]),
    ("actor", lambda e: e["actor"]),
    ("action", lambda e: e["action"]),
    ("target", lambda e: e["target"]),
    ("result", lambda e: e["result"] + (f" {e['status']}" if e["status"] else "")),
    ("source", lambda e: e["source"]),
]


@keys_app.command("create")
def create(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, operator, deployer or admin.")],
    workflows: Annotated[
        str | None, typer.Option(help="A label selector limiting it, e.g. team=support.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime: 90d, 2w, 12h.")] = None,
    server: Server = None,
    output: Annotated[
        Output | None, typer.Option("--output", "-o", help="json or yaml: the key and token.")
    ] = None,
) -> None:
    """Make an API key and print its token (shown this once).

    Example: agentflow keys create ci-bot --role operator --workflows team=support --expires 90d
    """
    with api_errors("keys create"), _client(server) as client:
        made = client.create_key(name, role, workflows=workflows, expires=expires)
    if output is not None:
        emit(made, output)
        return
    typer.echo(made["token"])
    typer.echo(f"key {name!r} ({made['role']}) made; this is the only time it is shown", err=True)


@keys_app.command("list")
def list_keys(
    server: Server = None,
    output: OutputOpt = Output.TABLE,
    all_: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
) -> None:
    """Every key: role, selector, expiry, last use (never the tokens)."""
    with api_errors("keys list"), _client(server) as client:
        emit(client.list_keys(include_revoked=all_), output, KEY_COLUMNS)


@keys_app.command("revoke")
def revoke(name: str, server: Server = None) -> None:
    """Revoke a key (by name or id): every node refuses it from now on."""
    with api_errors("keys revoke"), _client(server) as client:
        client.revoke_key(name)
    typer.echo(f"key {name!r} revoked")


def _since(value: str | None) -> str | None:
    """``1h``, ``7d`` (ago) or an ISO time, as the API's ISO time."""
    if value is None:
        return None
    from agentflowd.auth.keys import parse_expiry
    from agentflowd.errors import UsageError

    try:
        ago: timedelta = parse_expiry(value)
    except UsageError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(f"{value!r}: give 1h, 7d or an ISO time") from None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return (datetime.now(UTC) - ago).isoformat()


def audit(
    since: Annotated[str | None, typer.Option(help="1h, 7d or an ISO time.")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. key:ci-bot, oidc:alice@x.com.")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. workflow.delete, key.create.")] = None,
    target: Annotated[str | None, typer.Option(help="A workflow, execution or key.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    server: Server = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """The audit log (admin): who did what, to what, when, from where, with what result.

    Example: agentflow audit --since 24h --actor key:ci-bot -o json
    """
    params: dict[str, Any] = {"actor": actor, "action": action, "target": target}
    with api_errors("audit"), _client(server) as client:
        rows = client.audit(since=_since(since), limit=limit, **params)
    emit(rows, output, AUDIT_COLUMNS)


def settings(
    server: Server = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="yaml or json.")] = Output.YAML,
) -> None:
    """The daemon's running configuration (admin; secrets masked)."""
    with api_errors("settings"), _client(server) as client:
        emit(client.settings(), Output.JSON if output is Output.JSON else Output.YAML)
