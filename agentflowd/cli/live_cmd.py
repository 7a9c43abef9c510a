"""``agentflow live-view WORKFLOW|EXECUTION``: an execution's DAG, live, in the terminal.

Each step's state, attempt, duration, LLM tokens and cost, redrawn on every event of the
execution (Server-Sent Events) until it ends. A workflow name shows its latest execution.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import typer

from agentflowd.cli.output import api_errors
from agentflowd.cli.remote import Server, _client

__all__ = ["live_view", "render"]

_EXECUTION_ID = re.compile(r"[0-9a-f]{24}")
_STYLE = {
    "succeeded": "green",
    "running": "bold yellow",
    "pending": "dim",
    "failed": "bold red",
    "skipped": "dim",
    "cancelled": "magenta",
}


def _duration(step: dict[str, Any]) -> str:
    if not step.get("started_at"):
        return ""
    start = datetime.fromisoformat(step["started_at"])
    end = datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else None
    if end is None:
        return "…"
    return f"{(end - start).total_seconds() * 1000:.0f} ms"


def render(detail: dict[str, Any]) -> Any:
    """A rich table of the execution's steps, in dependency order (as the API lists them)."""
    from rich.table import Table

    by_agent = detail.get("cost", {}).get("by_agent", {})
    table = Table(
        title=f"{detail['workflow']} · {detail['id']} · {detail['state']}",
        caption=f"LLM cost ${detail.get('cost', {}).get('total_usd', '0')}",
    )
    for column in ("step", "state", "attempt", "duration", "LLM calls", "cost", "error"):
        table.add_column(column)
    for step in detail["steps"]:
        state = step["state"]
        spent = by_agent.get(step["step"], {})
        table.add_row(
            step["step"],
            f"[{_STYLE.get(state, '')}]{state}[/]" if _STYLE.get(state) else state,
            str(step["attempt"]),
            _duration(step),
            str(spent.get("calls", "")),
            f"${spent['cost_usd']}" if spent else "",
            (step.get("error") or "")[:60],
        )
    return table


def live_view(
    target: str = typer.Argument(..., help="An execution id, or a workflow (its latest run)"),
    server: Server = None,
) -> None:
    """Watch an execution's steps live until it ends."""
    from rich.console import Console
    from rich.live import Live

    with api_errors("live-view"), _client(server) as client:
        execution_id = target
        if not _EXECUTION_ID.fullmatch(target):
            recent = client.list_executions(workflow=target, limit=1)
            if not recent:
                typer.echo(f"agentflow live-view: {target} has no executions", err=True)
                raise typer.Exit(3)
            execution_id = recent[0]["id"]
        detail = client.get_execution(execution_id)
        console = Console()
        with Live(render(detail), console=console, refresh_per_second=8) as live:
            for _event in client.stream_execution_events(execution_id):
                detail = client.get_execution(execution_id)
                live.update(render(detail))
            detail = client.get_execution(execution_id)
            live.update(render(detail))
    if detail["state"] != "succeeded":
        raise typer.Exit(1)
