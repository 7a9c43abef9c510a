"""Commands for executions: ``run``, ``list executions``, ``describe execution``, ``cancel``.

    agentflow run customer-support-pipeline --input '{"ticket": "My order never came"}' --wait
    agentflow list executions --workflow customer-support-pipeline
    agentflow describe execution 019ab2c4d5e6f7a8b9c0d1e2
    agentflow cancel 019ab2c4d5e6f7a8b9c0d1e2

``run --wait`` follows the execution's events and exits 0 when it succeeded, 1 otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agentflowd.cli.output import Column, Output, api_errors, emit
from agentflowd.cli.remote import OutputOpt, Server, _client, describe_app, list_app
from agentflowd.sdk import ExecutionEvent

__all__ = ["register"]

EXECUTION_COLUMNS: list[Column] = [
    ("id", lambda e: e["id"]),
    ("workflow", lambda e: e["workflow"]),
    ("state", lambda e: e["state"]),
    ("trigger", lambda e: e["trigger"]),
    ("created", lambda e: (e["created_at"] or "")[:19]),
    ("finished", lambda e: (e["finished_at"] or "")[11:19] or None),
]


def _input(value: str | None) -> Any:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--input is not JSON: {exc}") from exc


def _line(event: ExecutionEvent) -> str:
    step = f" {event.agent}" if event.agent else ""
    attempt = f" (attempt {event.attempt})" if event.attempt else ""
    data = event.data or {}
    extra = ""
    if isinstance(data, dict):
        if data.get("error"):
            extra = f": {data['error']}"
        elif "elapsed_ms" in data:
            extra = f" in {data['elapsed_ms']:.1f} ms"
        elif data.get("kind"):
            extra = f": {data['kind']} {'ok' if data.get('ok') else 'failed'}"
    return f"{event.at[11:23]}  {event.type}{step}{attempt}{extra}"


def run(
    workflow: Annotated[str, typer.Argument(help="The workflow to run")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="JSON, or @file.json")] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow it to the end; exit 1 unless it succeeded")
    ] = False,
    server: Server = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Start an execution of a workflow."""
    payload = _input(input)
    with api_errors("run"), _client(server) as client:
        started = client.run(workflow, payload)
        if not wait:
            if output is Output.TABLE:
                typer.echo(f"execution {started['id']} {started['state']}")
            else:
                emit(started, output)
            return
        if output is Output.TABLE:
            typer.echo(f"execution {started['id']} {started['state']}", err=True)
        for event in client.stream_execution_events(started["id"]):
            if output is Output.TABLE:
                typer.echo(_line(event), err=True)
        final = client.get_execution(started["id"])
    if output is Output.TABLE:
        typer.echo(json.dumps(final["output"], indent=2) if final["output"] is not None else "")
        typer.echo(
            f"{final['state']}" + (f": {final['error']}" if final["error"] else ""), err=True
        )
    else:
        emit(final, output)
    if final["state"] != "succeeded":
        raise typer.Exit(1)


@list_app.command("executions")
def list_executions(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's")] = None,
    state: Annotated[str | None, typer.Option(help="Only in this state")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    server: Server = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Executions, newest first."""
    with api_errors("list executions"), _client(server) as client:
        emit(
            client.list_executions(workflow=workflow, state=state, limit=limit),
            output,
            EXECUTION_COLUMNS,
        )


@describe_app.command("execution")
def describe_execution(
    execution_id: str, server: Server = None, output: OutputOpt = Output.TABLE
) -> None:
    """An execution: state, steps with attempts and errors, cost."""
    with api_errors("describe execution"), _client(server) as client:
        data = client.get_execution(execution_id)
    if output is not Output.TABLE:
        emit(data, output)
        return
    lines = [
        f"Execution:   {data['id']}",
        f"Workflow:    {data['workflow']} (generation {data['generation']})",
        f"State:       {data['state']}" + (f": {data['error']}" if data["error"] else ""),
        f"Trigger:     {data['trigger']}",
        f"Created:     {data['created_at']}",
        f"Finished:    {data['finished_at'] or '-'}",
        f"LLM cost:    ${data['cost']['total_usd']}",
        "Steps:",
    ]
    for step in data["steps"]:
        error = f"  {step['error']}" if step["error"] else ""
        sha = (step["image_sha256"] or "")[:12]
        lines.append(
            f"  {step['step']:<24} {step['state']:<10} attempt {step['attempt']}  "
            f"{step['image']} sha256:{sha}{error}"
        )
    typer.echo("\n".join(lines))


def cancel(execution_id: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """Stop an execution: nothing more starts; running steps end within their timeout."""
    with api_errors("cancel"), _client(server) as client:
        data = client.cancel(execution_id)
    if output is Output.TABLE:
        typer.echo(f"execution {data['id']}: cancelling")
    else:
        emit(data, output)


delete_app = typer.Typer(help="Delete an object.", no_args_is_help=True)


def deploy(
    file: Annotated[Path, typer.Argument(help="A Workflow manifest (YAML)", exists=True)],
    server: Server = None,
) -> None:
    """Apply a workflow through the API (for names git does not manage)."""
    with api_errors("deploy"), _client(server) as client:
        result = client.deploy(file.read_text(encoding="utf-8"))
    verb = "created" if result["generation"] == 1 else "updated"
    typer.echo(f"workflow {result['name']} {verb} (generation {result['generation']})")


@delete_app.command("workflow")
def delete_workflow(name: str, server: Server = None) -> None:
    """Delete a workflow applied through the API (git's are deleted in git)."""
    with api_errors("delete workflow"), _client(server) as client:
        client.delete_workflow(name)
    typer.echo(f"workflow {name} deleted")


def status(workflow: str, server: Server = None, output: OutputOpt = Output.TABLE) -> None:
    """A workflow's phase and its latest executions."""
    with api_errors("status"), _client(server) as client:
        data = client.get_workflow(workflow)
        recent = client.list_executions(workflow=workflow, limit=5)
    if output is not Output.TABLE:
        emit({"workflow": data, "executions": recent}, output)
        return
    typer.echo(
        f"{data['name']}: {data['phase']}, generation {data['generation']}, "
        f"{data['agents']} agents, origin {data['origin']}"
    )
    emit(recent, output, EXECUTION_COLUMNS)


def logs(
    workflow: str,
    agent: Annotated[str | None, typer.Argument(help="Only this agent's log")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow a running one")] = False,
    server: Server = None,
) -> None:
    """The agents' logs of a workflow's latest execution."""
    with api_errors("logs"), _client(server) as client:
        recent = client.list_executions(workflow=workflow, limit=1)
        if not recent:
            typer.echo(f"agentflow logs: {workflow} has no executions", err=True)
            raise typer.Exit(3)
        execution_id = recent[0]["id"]
        if follow:
            for event in client.stream_execution_events(execution_id):
                if agent is None or event.agent == agent:
                    typer.echo(_line(event), err=True)
        detail = client.get_execution(execution_id)
    for step in detail["steps"]:
        if agent is not None and step["step"] != agent:
            continue
        typer.echo(f"==> {step['step']} ({step['state']}, attempt {step['attempt']})")
        if step["log"]:
            typer.echo(step["log"].rstrip("\n"))


def register(app: typer.Typer) -> None:
    """Add these commands to the ``agentflow`` app."""
    for fn in (run, cancel, deploy, status, logs):
        app.command(fn.__name__)(fn)
    app.add_typer(delete_app, name="delete")
