"""Commands that talk to a running agentflowd: list, describe, sync, diff and operator actions.

The server is ``--server``, else ``$AGENTFLOW_API_URL``, else http://127.0.0.1:8080.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentflowd.cli.output import Column, Output, api_errors, emit

if TYPE_CHECKING:
    from agentflowd.client import AgentFlowClient

__all__ = ["register"]

Server = Annotated[
    str | None,
    typer.Option("--server", "-s", envvar="AGENTFLOW_API_URL", help="agentflowd's API URL."),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")]

WORKFLOW_COLUMNS: list[Column] = [
    ("name", lambda w: w["name"]),
    ("phase", lambda w: w["phase"]),
    ("agents", lambda w: w["agents"]),
    ("revision", lambda w: (w["revision"] or "")[:12]),
    ("gen", lambda w: w["generation"]),
    ("pinned", lambda w: (w["pinned_revision"] or "")[:12] or None),
    ("origin", lambda w: w["origin"]),
]
REVISION_COLUMNS: list[Column] = [
    ("id", lambda r: r["id"]),
    ("commit", lambda r: r["sha"][:12]),
    ("kind", lambda r: r["kind"]),
    ("state", lambda r: r["state"]),
    ("started", lambda r: r["started_at"][:19]),
    ("summary", lambda r: r["summary"]),
]
CHANGE_COLUMNS: list[Column] = [
    ("workflow", lambda c: c["name"]),
    ("action", lambda c: c["action"]),
    ("reason", lambda c: c["reason"]),
]


def _client(server: str | None) -> AgentFlowClient:
    import os

    from agentflowd.cli.config_cmd import read_settings
    from agentflowd.client import AgentFlowClient  # httpx only for commands that need it

    settings = read_settings()
    url = server or os.environ.get("AGENTFLOW_API_URL") or settings.get("api.endpoint")
    key = os.environ.get("AGENTFLOW_API_KEY") or settings.get("api.key")
    return AgentFlowClient(url, api_key=key)


list_app = typer.Typer(help="List workflows, revisions or executions.", no_args_is_help=True)
describe_app = typer.Typer(help="Show one object in full.", no_args_is_help=True)


@list_app.command("workflows")
def list_workflows(server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """Every workflow: phase, revision, generation, pin."""
    with api_errors("list workflows"), _client(server) as client:
        emit(client.list_workflows(), output, WORKFLOW_COLUMNS)


@list_app.command("revisions")
def list_revisions(
    server: Server = None,
    output: OutputOpt = Output.TABLE,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Revisions the daemon picked up and what came of them."""
    with api_errors("list revisions"), _client(server) as client:
        emit(client.list_revisions(limit), output, REVISION_COLUMNS)


@describe_app.command("workflow")
def describe_workflow(name: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """A workflow: state, last error, schedules with next fire times, history."""
    with api_errors("describe workflow"), _client(server) as client:
        data = client.get_workflow(name)
    if output is not Output.TABLE:
        emit(data, output)
        return
    lines = [
        f"Name:        {data['name']}",
        f"Phase:       {data['phase']}",
        f"Origin:      {data['origin']} ({data['file'] or '-'})",
        f"Revision:    {data['revision'] or '-'} (generation {data['generation']})",
        f"Suspended:   {'yes' if data['suspended'] else 'no'}",
        f"Pinned:      {data['pinned_revision'] or 'no'}",
        f"Hash:        {data['spec_hash'][:16]}",
    ]
    agents = data["spec"]["spec"]["agents"]
    lines.append(f"Agents:      {', '.join(a['name'] for a in agents)}")
    for ref, image in sorted(data.get("images", {}).items()):
        lines.append(f"Image:       {ref} -> {image['path']} sha256:{image['sha256'][:16]}")
    for schedule in data["schedules"]:
        nxt = ", ".join(schedule["next"][:2])
        lines.append(f"Schedule:    {schedule['cron']} ({schedule['timezone']}), next {nxt}")
    if data["last_error"]:
        lines.append(f"Last error at {(data['error_revision'] or '')[:12]}:")
        lines += [
            f"  {e['file']}:{e['line']}:{e['col']}: {e['path']}: {e['message']}"
            for e in data["last_error"]
        ]
    lines.append("History:")
    lines += [
        f"  gen {h['generation']:>3}  {h['action']:<9} {(h['revision'] or '-')[:12]}  "
        f"{h['applied_at'][:19]}"
        for h in data["history"]
    ]
    typer.echo("\n".join(lines))


def _show_changes(data: dict[str, Any], output: Output) -> None:
    if output is not Output.TABLE:
        emit(data, output)
        return
    head = f"commit {data['commit'][:12]}"
    if data.get("state"):
        head += f": {data['state']}"
    typer.echo(head)
    if data.get("changes"):
        emit(data["changes"], output, CHANGE_COLUMNS)
    for d in data.get("diagnostics", []):
        where = f"{d['file']}:{d['line']}:{d['col']}" if d["line"] else d["file"]
        typer.echo(f"{where}: error: {d['path'] + ': ' if d['path'] else ''}{d['message']}")


def sync(
    server: Server = None,
    output: OutputOpt = Output.TABLE,
    force: Annotated[bool, typer.Option(help="Reconcile even if already applied.")] = False,
) -> None:
    """Fetch the repository and reconcile now."""
    with api_errors("sync"), _client(server) as client:
        data = client.sync(force=force)
    _show_changes(data, output)
    if data.get("state") == "failure":
        raise typer.Exit(1)


def diff(
    server: Server = None,
    output: OutputOpt = Output.TABLE,
    ref: Annotated[str | None, typer.Option(help="Ref or commit (default: the branch).")] = None,
) -> None:
    """What applying a ref would change, against what is deployed."""
    with api_errors("diff"), _client(server) as client:
        data = client.diff(ref)
    _show_changes(data, output)


def suspend(name: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """Stop a workflow's triggers from starting executions."""
    with api_errors("suspend"), _client(server) as client:
        emit(client.suspend(name), output, WORKFLOW_COLUMNS)


def resume(name: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """Let a suspended workflow's triggers run again."""
    with api_errors("resume"), _client(server) as client:
        emit(client.resume(name), output, WORKFLOW_COLUMNS)


def rollback(
    name: str,
    to: Annotated[str, typer.Option("--to", help="Commit, ref, or gen:N from the history.")],
    server: Server = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Activate an earlier version and pin it; auto-sync leaves it until `unpin`."""
    with api_errors("rollback"), _client(server) as client:
        emit(client.rollback(name, to), output, WORKFLOW_COLUMNS)


def unpin(name: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """Follow git again: re-applies the branch's newest commit."""
    with api_errors("unpin"), _client(server) as client:
        data = client.unpin(name)
    _show_changes(data, output)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``agentflow`` app."""
    app.add_typer(list_app, name="list")
    app.add_typer(describe_app, name="describe")
    for fn in (sync, diff, suspend, resume, rollback, unpin):
        app.command(fn.__name__)(fn)
