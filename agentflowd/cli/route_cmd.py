"""``agentflow route explain``: the route a call would take, the fallback chain and why.

    agentflow route explain -f workflows/support.yaml --agent classify --prompt "Refund please"
    agentflow route explain -f w.yaml --agent classify --feature accuracy=critical -o json

Nothing is called: the decision is made exactly as the router would make it now, with the
deployments of ``--config`` (the daemon's config file; its ``router:`` section) or the
defaults, and prices from genai-prices and the config's overrides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentflowd.cli.output import Output

if TYPE_CHECKING:
    from router.router import Router

__all__ = ["load_router", "load_workflow", "route_app"]

route_app = typer.Typer(help="Explain LLM routing decisions.", no_args_is_help=True)


def load_workflow(path: Path) -> dict[str, Any]:
    """The canonical form of the (one, valid) workflow in ``path``; exit 1 naming the errors."""
    from agentflowd.manifest import canonical_dict, load_sources
    from agentflowd.manifest.load import SourceFile

    report = load_sources([SourceFile(path=str(path), data=path.read_bytes())])
    problems = [d.format() for d in report.diagnostics]
    valid = [m for m in report.manifests if m.valid and m.workflow is not None]
    if problems or not valid:
        for line in problems or [f"{path}: no valid workflow"]:
            typer.echo(line, err=True)
        raise typer.Exit(1)
    workflow = valid[0].workflow
    assert workflow is not None
    return canonical_dict(workflow)


def load_router(
    config: Path | None, *, mock_when_unconfigured: bool
) -> tuple[Router, dict[str, str]]:
    """The router of ``config``'s ``router:`` section (defaults without one)."""
    from agentflowd.manifest.yamlread import read_yaml
    from router import ConfigError
    from router.config import build_router, load_config

    section: dict[str, Any] = {}
    if config is not None:
        result = read_yaml(config.read_bytes(), str(config))
        if result.fatal or not result.documents:
            typer.echo(f"{config}: not a readable YAML config", err=True)
            raise typer.Exit(2)
        doc = result.documents[0].data
        section = dict((doc or {}).get("router") or {}) if isinstance(doc, dict) else {}
    try:
        settings = load_config(section)
        if mock_when_unconfigured:
            from dataclasses import replace

            settings = replace(settings, mock_when_unconfigured=True)
        return build_router(settings)
    except ConfigError as exc:
        typer.echo(f"agentflow: {exc}", err=True)
        raise typer.Exit(2) from exc


@route_app.command("explain")
def explain(
    workflow: Annotated[
        Path, typer.Option("--file", "-f", help="The workflow manifest", exists=True)
    ],
    agent: Annotated[str, typer.Option(help="The agent whose calls to route")],
    prompt: Annotated[str, typer.Option(help="The prompt to decide for")] = "Hello",
    feature: Annotated[
        list[str] | None, typer.Option(help="A declared feature, e.g. accuracy=critical")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="The call's max_tokens")] = None,
    config: Annotated[
        Path | None, typer.Option(help="agentflowd config (its router: section)")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.TABLE,
) -> None:
    """Print the chosen route, the fallback chain and why, without calling anyone."""
    from router import ChatRequest, ConfigError, Message, policy_for_agent

    spec = load_workflow(workflow)
    try:
        policy = policy_for_agent(spec, agent)
    except ConfigError as exc:
        typer.echo(f"agentflow route explain: {exc}", err=True)
        raise typer.Exit(2) from exc
    declared: dict[str, Any] = {}
    for item in feature or ():
        key, sep, value = item.partition("=")
        if not sep:
            typer.echo(f"agentflow route explain: --feature {item!r}: write NAME=VALUE", err=True)
            raise typer.Exit(2)
        declared[key] = {"true": True, "false": False}.get(value, value)
    router, missing = load_router(config, mock_when_unconfigured=False)
    request = ChatRequest(
        messages=(Message("user", prompt),), max_tokens=max_tokens, features=declared
    )
    decision = router.decide(policy, request)
    data = decision.explain()
    data["unconfigured"] = missing
    if output is not Output.TABLE:
        if output is Output.JSON:
            typer.echo(json.dumps(data, indent=2))
        else:
            from agentflowd.cli.output import emit

            emit(data, output)
        return
    features = data["features"]
    declared_names = set(features["declared"])
    shown = ", ".join(
        f"{k}={v}{'*' if k in declared_names else ''}"
        for k, v in features.items()
        if k not in ("declared",)
    )
    lines = [
        f"Strategy:  {data['strategy']}",
        f"Features:  {shown}   (* declared)",
        f"Chosen:    {data['chosen'] or '-- none: the call would be refused'}",
    ]
    if data["chain"]:
        lines.append("Chain:")
        for i, c in enumerate(data["chain"], 1):
            why = (
                f"matched {c['matched']}" if c["matched"] else "fallback (conditions do not match)"
            )
            lines.append(
                f"  {i}. {c['route']:<32} {why}; expected ${c['expected_cost_usd']}, "
                f"worst ${c['worst_cost_usd']} ({c['price_source']}) [{c['origin']}]"
            )
    if data["dropped"]:
        lines.append("Dropped:")
        lines += [f"  {d['route']:<32} {d['reason']}" for d in data["dropped"]]
    for name, why in sorted(missing.items()):
        lines.append(f"Note: deployment {name!r} is not configured: {why}")
    typer.echo("\n".join(lines))
