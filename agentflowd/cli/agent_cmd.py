"""``agentflow agent run``: run one agent locally in the sandbox, exactly as a step would run.

    agentflow agent run agents/classifier:v1.2 --input '{"ticket": "refund"}'
    agentflow agent run agents/classifier/v1.2/agent.py --input '{"ticket": "refund"}'
    agentflow agent run agent.wasm --input @input.json --timeout 5s --memory 128Mi --allow api.x.com

The agent is a file (``agent.py`` or a component), an image directory (``NAME/TAG/``), or an
image reference resolved by the workflow rule (``NAME[:TAG]`` under ``--images-root``, by
default the root of the current git work tree); the image and its SHA-256 are printed.

Prints the output JSON on stdout, the agent's log and outcome on stderr; exit 0 when the agent
returned a result, 1 for any other outcome. LLM calls go through the router: with
``--workflow W.yaml --agent NAME`` as that workflow routes them, else to
``--route DEPLOYMENT/MODEL`` (default ``mock/mock``: the deterministic mock provider,
labelled as such in every answer). A deployment without its API key is answered by the mock,
and stderr says so. ``--llm FILE`` answers from a JSON list of canned answers instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["agent_app", "build"]

agent_app = typer.Typer(help="Run agents locally in the sandbox.", no_args_is_help=True)


def _router_llm(
    llm: str,
    workflow: Path | None,
    agent: str | None,
    route: str,
    config: Path | None,
    limits_deadline: Callable[[], float],
) -> Callable[[str], str]:
    """The llm-complete callback through the router: the workflow's routing for ``agent``, or
    the single ``route`` (``mock`` always uses the mock provider)."""
    from agentflowd.cli.route_cmd import load_router, load_workflow
    from agentflowd.llm import llm_callback
    from router import CallContext, ConfigError, Route, RoutingPolicy, policy_for_agent

    router, missing = load_router(config, mock_when_unconfigured=True)
    if llm == "mock":
        policy = RoutingPolicy(
            strategy="priority", routes=(Route("mock", "mock", (), "--llm mock"),)
        )
    elif workflow is not None:
        if agent is None:
            raise typer.BadParameter("--workflow needs --agent NAME")
        try:
            policy = policy_for_agent(load_workflow(workflow), agent)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from exc
    else:
        deployment, sep, model = route.partition("/")
        if not sep or not model:
            raise typer.BadParameter(f"--route {route!r}: write DEPLOYMENT/MODEL")
        policy = RoutingPolicy(
            strategy="priority", routes=(Route(deployment, model, (), "--route"),)
        )
    used = {r.deployment for r in policy.routes}
    for name, why in sorted(missing.items()):
        if name in used:
            typer.echo(f"agentflow: {name}: {why}; answered by the mock provider", err=True)
    return llm_callback(router, policy, lambda: CallContext(deadline=limits_deadline()))


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


def _find_agent(target: str, images_root: Path | None) -> tuple[Path, str | None, bytes]:
    """The agent file for ``target`` (a file, an image directory or an image reference), a
    line naming the image and its digest when it was resolved as one, and its content."""
    from agentflowd.manifest.images import IMAGE_FILES, IMAGE_PATTERN
    from agentflowd.source import DirectoryImages

    path = Path(target)
    if path.is_file():
        return path, None, path.read_bytes()
    if path.is_dir():
        for name, _kind in IMAGE_FILES:
            if (path / name).is_file():
                return path / name, None, (path / name).read_bytes()
        raise typer.BadParameter(f"{target}: a directory without agent.wasm or agent.py")
    root = images_root
    if root is None:
        from agentflowd.cli.validate import work_tree

        root = work_tree(Path.cwd()) or Path.cwd()
    if not re.fullmatch(IMAGE_PATTERN, target):
        raise typer.BadParameter(f"{target}: no such file, and not an image reference")
    found = DirectoryImages(root).resolve(target)
    if isinstance(found, str):
        raise typer.BadParameter(f"{found} (looked under {root})")
    content = DirectoryImages(root).read(found)  # the bytes hashed are the bytes run
    return root / found.path, f"image {target}: {found.path} sha256:{found.sha256}", content


@agent_app.command("run")
def run(
    target: Annotated[
        str,
        typer.Argument(
            metavar="PATH_OR_IMAGE",
            help="agent.py, a component (.wasm), an image directory, or NAME[:TAG]",
        ),
    ],
    input: Annotated[str, typer.Option("--input", "-i", help="JSON, or @file.json")] = "{}",
    timeout: Annotated[str, typer.Option(help="Wall-clock limit, e.g. 30s")] = "60s",
    memory: Annotated[str, typer.Option(help="Memory limit, e.g. 256Mi")] = "256Mi",
    cpu: Annotated[str, typer.Option(help="CPU, e.g. 500m or 1")] = "1",
    allow: Annotated[list[str] | None, typer.Option(help="A host the agent may reach")] = None,
    llm: Annotated[
        str, typer.Option(help="'router' (default), 'mock', or a JSON file of canned answers")
    ] = "router",
    workflow: Annotated[
        Path | None, typer.Option("--workflow", "-f", help="Route LLM calls as this workflow does")
    ] = None,
    agent_name: Annotated[
        str | None, typer.Option("--agent", help="The agent in --workflow")
    ] = None,
    route: Annotated[
        str, typer.Option(help="DEPLOYMENT/MODEL when no --workflow, e.g. openai/gpt-4o-mini")
    ] = "mock/mock",
    config: Annotated[
        Path | None, typer.Option(help="agentflowd config whose router: section to use")
    ] = None,
    images_root: Annotated[
        Path | None,
        typer.Option(help="Where NAME[:TAG] images are found; default: the git work tree's root"),
    ] = None,
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
    )
    from sandbox.errors import SandboxError
    from sandbox.isolate import ProcessSandbox, run_component
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
    agent, image_line, content = _find_agent(target, images_root)
    if image_line:
        typer.echo(f"agentflow: {image_line}", err=True)
    deadline = {"ends": 0.0}
    if llm in ("router", "mock"):
        llm_fn = _router_llm(llm, workflow, agent_name, route, config, lambda: deadline["ends"])
    else:
        llm_fn = _canned_llm(Path(llm))
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
            wasm = content
            if not engine.is_cached(wasm):
                progress(f"compiling {agent.name} (first use)")
            engine.load(wasm)
            processes = ProcessSandbox(default_cache_dir() / "compiled")
            try:
                deadline["ends"] = time.monotonic() + limits.timeout_seconds
                report = run_component(engine, wasm, text, ctx, processes)
            finally:
                processes.close()
        else:
            runtime = PythonRuntime(engine, progress=progress)
            runtime.component()
            deadline["ends"] = time.monotonic() + limits.timeout_seconds
            report = runtime.run(content.decode("utf-8"), text, ctx)
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
