"""Compiling a workflow's routing for one agent, from the workflow's canonical spec (a dict).

The input is the spec as the daemon stores it (the manifest's canonical JSON form: camelCase
fields, condition keys in snake_case), so this library needs nothing from ``agentflowd``:

    spec.llmRouting  {strategy, fallbacks: [{provider, model, conditions}]}
    spec.agents[i].llm  {provider, model, temperature, maxTokens, features}
    spec.budget  {perExecution, perDay, perMonth, onExceeded}

The agent's own ``llm`` is a route that always applies; ``fallbacks`` add routes with their
conditions. Its ``temperature`` is the default of every call, and its ``maxTokens`` the default
and the cap (agent code cannot ask for more). Each route's ``provider`` names a deployment of
the router's configuration (``openai``, ``anthropic``, ``local``, ``mock``, or any other name
the configuration defines).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from router.budget import BudgetLimit
from router.errors import ConfigError
from router.routing import Route, RoutingPolicy, compile_conditions

__all__ = ["budget_limits", "policy_for_agent"]


def _agent(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for agent in spec.get("agents", ()):
        if agent.get("name") == name:
            return agent  # type: ignore[no-any-return]
    known = ", ".join(str(a.get("name")) for a in spec.get("agents", ()))
    raise ConfigError(f"no agent named {name!r} (agents: {known or 'none'})")


def policy_for_agent(workflow: Mapping[str, Any], agent: str) -> RoutingPolicy:
    """The compiled routing of ``agent`` in ``workflow`` (a canonical manifest dict)."""
    spec = workflow.get("spec", workflow)
    own = _agent(spec, agent).get("llm")
    routing = spec.get("llmRouting") or {}
    routes: list[Route] = []
    declared: dict[str, Any] = {}
    if own:
        routes.append(Route(str(own["provider"]), str(own["model"]), (), "agent llm"))
        declared = {k: v for k, v in (own.get("features") or {}).items() if v is not None}
    for i, entry in enumerate(routing.get("fallbacks", ())):
        try:
            conditions = compile_conditions(entry.get("conditions"))
        except ConfigError as exc:
            raise ConfigError(f"llmRouting.fallbacks[{i}]: {exc}") from exc
        routes.append(
            Route(str(entry["provider"]), str(entry["model"]), conditions, f"fallbacks[{i}]")
        )
    budget = spec.get("budget") or {}
    return RoutingPolicy(
        strategy=str(routing.get("strategy", "cost-optimized")),
        routes=tuple(routes),
        declared=declared,
        strict=bool(routing.get("strict", False)),
        budget_action=str(budget.get("onExceeded", "downgrade")),
        temperature=(own or {}).get("temperature"),
        max_tokens=(own or {}).get("maxTokens"),
    )


def budget_limits(
    workflow: Mapping[str, Any], *, name: str, execution: str, today: date
) -> tuple[BudgetLimit, ...]:
    """The hard limits a call of an execution of ``workflow`` counts against."""
    spec = workflow.get("spec", workflow)
    budget = spec.get("budget") or {}
    out = []
    for field, scope in (
        ("perExecution", f"execution:{execution}"),
        ("perDay", f"workflow:{name}:day:{today.isoformat()}"),
        ("perMonth", f"workflow:{name}:month:{today.strftime('%Y-%m')}"),
    ):
        if budget.get(field) is not None:
            out.append(BudgetLimit(scope, Decimal(str(budget[field]))))
    return tuple(out)
