"""``agentflow agent run``: run one agent locally in the sandbox, exactly as a step would run.

    agentflow agent run agents/classifier/agent.py --input '{"ticket": "refund"}'
    agentflow agent run agent.wasm --input @input.json --timeout 5s --memory 128Mi --allow api.x.com

Prints the output JSON on stdout, the agent's log and outcome on stderr; exit 0 when the agent
returned a result, 1 for any other outcome. LLM calls go to a deterministic mock (``--llm
mock``, labelled as such in every answer) or to canned answers from a JSON file until the router
is wired in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["agent_app", "build"]

agent_app = typer.Typer(help="Run agents locally in the sandbox.", no_args_is_help=True)


def _mock_llm(request: str) -> str:
    try:
        data = json.loads(request)
    except ValueError:
        data = {}
    prompt = data.get("prompt") or json.dumps(data.get("messages", ""))
    return json.dumps(
        {
            "text": f"[mock] {str(prompt)[:200]}",
            "provider": "mock",
            "model": "mock",
            "usage": {"input_tokens": len(str(prompt).split()), "output_tokens": 3},
        }
    )


def _canned_llm(path: Path) -> Callable[[str], str]:
    answers = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(answers, list) or not answers:
        raise typer.BadParameter(f"{path}: expected a JSON list of answers")
    state = {"next": 0}

    def answer(_request: str) -> str:
        item = answers[min(state["next"], len(answers) - 1)]
        state["next"] += 1
        return json.dumps(item if isinstance(item, dict) else {"text": str(item)})

    return answer


@agent_app.command("run")
def run(
    agent: Annotated[Path, typer.Argument(help="agent.py, or a component (.wasm)", exists=True)],
    input: Annotated[str, typer.Option("--input", "-i", help="JSON, or @file.json")] = "{}",
    timeout: Annotated[str, typer.Option(help="Wall-clock limit, e.g. 30s")] = "60s",
    memory: Annotated[str, typer.Option(help="Memory limit, e.g. 256Mi")] = "256Mi",
    cpu: Annotated[str, typer.Option(help="CPU, e.g. 500m or 1")] = "1",
    allow: Annotated[list[str] | None, typer.Option(help="A host the agent may reach")] = None,
    llm: Annotated[str, typer.Option(help="'mock', or a JSON file of canned answers")] = "mock",
) -> None:
    """Run one agent and print its output, log and outcome."""
    from agentflowd.manifest.quantities import (
        QuantityError,
        parse_cpu,
        parse_duration,
        parse_memory,
    )
    from sandbox import (
        HostCallbacks,
        HttpPolicy,
        RunContext,
        SandboxEngine,
        StepLimits,
        make_http_fetch,
        run_step,
    )
    from sandbox.errors import SandboxError
    from sandbox.pybuild import default_cache_dir
    from sandbox.python import PythonRuntime

    try:
        limits = StepLimits(
            timeout_seconds=parse_duration(timeout).total_seconds(),
            memory_bytes=parse_memory(memory),
            cpu_millicores=parse_cpu(cpu),
        )
    except QuantityError as exc:
        typer.echo(f"agentflow agent run: {exc}", err=True)
        raise typer.Exit(2) from exc
    text = Path(input[1:]).read_text(encoding="utf-8") if input.startswith("@") else input
    try:
        json.loads(text)
    except ValueError as exc:
        typer.echo(f"agentflow agent run: --input is not JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    llm_fn = _mock_llm if llm == "mock" else _canned_llm(Path(llm))
    deadline = {"ends": 0.0}
    http = make_http_fetch(
        HttpPolicy(allow=tuple(allow or ())),
        remaining_seconds=lambda: deadline["ends"] - time.monotonic(),
    )
    ctx = RunContext(
        limits=limits,
        callbacks=HostCallbacks(llm_complete=llm_fn, http_fetch=http),
        config_json=json.dumps({"agent": agent.stem, "attempt": 1, "local": True}),
    )
    engine = SandboxEngine(default_cache_dir() / "compiled")

    def progress(message: str) -> None:
        typer.echo(f"agentflow: {message}", err=True)

    try:
        deadline["ends"] = time.monotonic() + limits.timeout_seconds
        if agent.suffix == ".wasm":
            wasm = agent.read_bytes()
            if not engine.is_cached(wasm):
                progress(f"compiling {agent.name} (first use)")
            component = engine.load(wasm)
            deadline["ends"] = time.monotonic() + limits.timeout_seconds
            report = run_step(engine, component, text, ctx)
        else:
            runtime = PythonRuntime(engine, progress=progress)
            runtime.component()
            deadline["ends"] = time.monotonic() + limits.timeout_seconds
            report = runtime.run(agent.read_text(encoding="utf-8"), text, ctx)
    except SandboxError as exc:
        typer.echo(f"agentflow agent run: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.close()
    if report.log:
        typer.echo(report.log.rstrip("\n"), err=True)
    if report.outcome.ok:
        typer.echo(report.outcome.output)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    typer.echo(
        f"outcome: {report.outcome.message()} ({report.elapsed_seconds * 1e3:.0f} ms; {counts})",
        err=True,
    )
    if not report.outcome.ok:
        if report.outcome.detail and "\n" in report.outcome.detail:
            typer.echo(report.outcome.detail.rstrip(), err=True)
        raise typer.Exit(1)


def build(
    directory: Annotated[
        Path, typer.Argument(help="A directory with agent.py", exists=True, file_okay=False)
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Default: DIR/agent.wasm")
    ] = None,
) -> None:
    """Package an agent and its pure-Python dependencies into its own component."""
    from sandbox.errors import SandboxError
    from sandbox.pybuild import build_agent

    try:
        built = build_agent(directory, output, lambda m: typer.echo(f"agentflow: {m}", err=True))
    except SandboxError as exc:
        typer.echo(f"agentflow build: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(built))
