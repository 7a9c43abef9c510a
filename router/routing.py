"""The routing decision: which routes may take a request, in which order, and why. Pure.

A workflow's routing (``spec.llmRouting``) and an agent's own ``llm`` are compiled once into a
:class:`RoutingPolicy`. Per request, :func:`decide`:

1. matches each route's conditions against the request's :class:`~router.features.Features`
   (a list of maps is any-of, one map all-of; no conditions = always);
2. applies the **hard filters**, which no fallback ever widens: ``data_sensitivity: high`` stays
   on trusted deployments (``local``, ``mock``, or marked ``trusted``); the context window; an
   unknown price (refused, or charged at the highest known rate); a disabled deployment; the
   budget (downgrade to a cheaper route, or refuse; zero-cost routes always pass);
3. ranks what is left by the strategy: ``cost-optimized`` (expected cost), ``quality-first``
   (price as the quality proxy, highest first), ``latency`` (observed latency), ``priority``
   (the agent's own ``llm`` first, then ``fallbacks`` as written). Routes whose conditions match
   come first, those matched on a *declared* feature (``accuracy: critical`` said by the agent
   or manifest) before those matched on an inferred one (a short prompt's ``complexity: low``);
   the others follow as further fallbacks unless the policy is strict. Routes whose
   circuit breaker is open go last instead of being dropped, so a request is never refused only
   because every deployment is cooling down.

The :class:`Decision` records every step for ``agentflow route explain`` and the ledger.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from router.errors import ConfigError
from router.features import FEATURE_VALUES, Features
from router.pricing import PriceBook, Rates

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Decision",
    "Deployment",
    "Route",
    "RoutingPolicy",
    "compile_conditions",
    "State",
    "decide",
]

STRATEGIES = ("cost-optimized", "quality-first", "latency", "priority")
Condition = tuple[tuple[str, Any], ...]


def compile_conditions(
    raw: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
) -> tuple[Condition, ...]:
    """Conditions as tuples of (feature, value): any-of maps, each all-of. Checked here, once."""
    if raw is None:
        return ()
    maps = [raw] if isinstance(raw, Mapping) else list(raw)
    out: list[Condition] = []
    for m in maps:
        items = []
        for key, value in m.items():
            if value is None:
                continue
            allowed = FEATURE_VALUES.get(key)
            if allowed is None:
                raise ConfigError(f"unknown condition {key!r} (known: {', '.join(FEATURE_VALUES)})")
            if value not in allowed:
                raise ConfigError(f"condition {key}: {value!r} is not one of {list(allowed)}")
            items.append((key, value))
        if not items:
            return ()  # an empty map matches everything
        out.append(tuple(sorted(items)))
    return tuple(out)


@dataclass(frozen=True)
class Route:
    """A deployment and model the router may use, and when."""

    deployment: str
    model: str
    conditions: tuple[Condition, ...] = ()
    origin: str = ""  # "agent llm", "fallbacks[1]"

    @functools.cached_property
    def label(self) -> str:
        """``deployment/model``."""
        return f"{self.deployment}/{self.model}"

    def matches(self, features: Features) -> tuple[str | None, bool]:
        """Which condition matched (``always`` without conditions; None when none does), and
        whether it matched on a feature the request declared (rather than inferred)."""
        if not self.conditions:
            return "always", False
        found: tuple[str | None, bool] = (None, False)
        for condition in self.conditions:
            if all(features.get(k) == v for k, v in condition):
                declared = any(k in features.declared for k, _ in condition)
                text = ", ".join(f"{k}={_show(v)}" for k, v in condition)
                if declared:
                    return text + " (declared)", True
                if found[0] is None:
                    found = (text, False)
        return found


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Deployment:
    """What routing needs to know of a configured provider endpoint."""

    name: str
    kind: str  # openai | anthropic | local | mock
    trusted: bool = False  # may take data_sensitivity: high (local and mock always may)

    @property
    def keeps_data_local(self) -> bool:
        """Whether sensitive requests may go here."""
        return self.trusted or self.kind in ("local", "mock")


@dataclass(frozen=True)
class RoutingPolicy:
    """A workflow's routing for one agent, compiled."""

    strategy: str
    routes: tuple[Route, ...]
    declared: Mapping[str, Any] = field(default_factory=dict)  # features the manifest declares
    strict: bool = False  # only routes whose conditions match
    budget_action: str = "downgrade"  # or "refuse"
    temperature: float | None = None  # the manifest's llm.temperature: the default
    max_tokens: int | None = None  # the manifest's llm.maxTokens: the default and the cap

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r} (known: {', '.join(STRATEGIES)})"
            )
        if not self.routes:
            raise ConfigError("no route: give the agent an llm, or llmRouting.fallbacks")


@dataclass
class Candidate:
    """A route that passed the filters, with what ranking used."""

    route: Route
    rates: Rates
    matched: str | None
    declared_match: bool
    expected_cost: Decimal
    worst_cost: Decimal
    score: float = 0.0
    cooling_until: float | None = None  # breaker open: tried last

    def explain(self) -> dict[str, Any]:
        """For traces."""
        return {
            "route": self.route.label,
            "origin": self.route.origin,
            "matched": self.matched,
            "expected_cost_usd": str(self.expected_cost.quantize(Decimal("0.000001"))),
            "worst_cost_usd": str(self.worst_cost.quantize(Decimal("0.000001"))),
            "price_source": self.rates.source,
            "score": round(self.score, 6),
            **({"cooling_until": self.cooling_until} if self.cooling_until else {}),
        }


@dataclass
class Decision:
    """The ordered chain to try, and why."""

    strategy: str
    features: Features
    chain: list[Candidate]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (route, reason)

    def explain(self) -> dict[str, Any]:
        """What ``agentflow route explain`` prints."""
        return {
            "strategy": self.strategy,
            "features": self.features.as_dict(),
            "chosen": self.chain[0].route.label if self.chain else None,
            "chain": [c.explain() for c in self.chain],
            "dropped": [{"route": r, "reason": why} for r, why in self.dropped],
        }


@dataclass(frozen=True)
class State:
    """What changes between requests: health, budget room, latencies (all optional)."""

    disabled: Mapping[str, str] = field(default_factory=dict)  # route label or deployment -> why
    cooling: Mapping[str, float] = field(default_factory=dict)  # route label -> open until
    budget_room: Decimal | None = None  # the least room left across the hard budgets
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # route label -> EWMA
    unknown_price: Rates | None = None  # charge unknown prices at these rates; None: refuse


def decide(
    policy: RoutingPolicy,
    features: Features,
    deployments: Mapping[str, Deployment],
    prices: PriceBook,
    state: State | None = None,
) -> Decision:
    """Filter and rank ``policy``'s routes for a request with ``features``."""
    state = state or State()
    decision = Decision(strategy=policy.strategy, features=features, chain=[])
    matching: list[Candidate] = []
    others: list[Candidate] = []
    seen: set[str] = set()
    for route in policy.routes:
        if route.label in seen:
            continue
        seen.add(route.label)
        candidate = _filter(route, policy, features, deployments, prices, state, decision)
        if candidate is not None:
            (matching if candidate.matched else others).append(candidate)
    rank = _RANKERS[policy.strategy]
    ranked = rank(matching, state)
    # a route chosen by what the request declares beats one chosen by what was inferred
    ranked = [c for c in ranked if c.declared_match] + [c for c in ranked if not c.declared_match]
    chain = ranked + ([] if policy.strict else rank(others, state))
    for candidate in others if policy.strict else ():
        decision.dropped.append((candidate.route.label, "conditions do not match (strict)"))
    chain = _budget(chain, policy, state, decision)
    decision.chain = [c for c in chain if c.cooling_until is None] + sorted(
        (c for c in chain if c.cooling_until is not None), key=lambda c: c.cooling_until or 0.0
    )
    return decision


def _filter(
    route: Route,
    policy: RoutingPolicy,
    features: Features,
    deployments: Mapping[str, Deployment],
    prices: PriceBook,
    state: State,
    decision: Decision,
) -> Candidate | None:
    def drop(reason: str) -> None:
        decision.dropped.append((route.label, reason))

    deployment = deployments.get(route.deployment)
    if deployment is None:
        why = state.disabled.get(route.deployment)
        drop(why or f"no deployment named {route.deployment!r} is configured")
        return None
    if features.data_sensitivity == "high" and not deployment.keeps_data_local:
        drop("data_sensitivity high: only local or trusted deployments")
        return None
    why = state.disabled.get(route.label) or state.disabled.get(route.deployment)
    if why:
        drop(f"disabled: {why}")
        return None
    rates = prices.rates(deployment.kind, route.model, deployment.name)
    if rates is None:
        if state.unknown_price is None:
            drop("price unknown (configure a price override)")
            return None
        rates = state.unknown_price
    if (
        rates.context_window
        and features.input_tokens + features.output_tokens > rates.context_window
    ):
        drop(
            f"context window {rates.context_window:,} < ~{features.input_tokens:,} input + "
            f"{features.output_tokens:,} output tokens"
        )
        return None
    matched, declared_match = route.matches(features)
    return Candidate(
        route=route,
        rates=rates,
        matched=matched,
        declared_match=declared_match,
        expected_cost=rates.expected(features.input_tokens, features.output_tokens),
        worst_cost=rates.worst_case(features.max_input_tokens, features.max_output_tokens),
        cooling_until=state.cooling.get(route.label),
    )


def _budget(
    chain: list[Candidate], policy: RoutingPolicy, state: State, decision: Decision
) -> list[Candidate]:
    room = state.budget_room
    if room is None:
        return chain
    over = [c for c in chain if c.worst_cost > room and c.worst_cost > 0]
    if not over:
        return chain
    refuse = policy.budget_action == "refuse" and chain and chain[0] in over
    kept = []
    for c in chain:
        if c in over or (refuse and c.worst_cost > 0):
            reason = (
                f"budget: worst case ${c.worst_cost:.6f} > ${room:.6f} left"
                if c in over
                else "budget refuses paid routes once the preferred one is over budget"
            )
            decision.dropped.append((c.route.label, reason))
        else:
            kept.append(c)
    return kept


def _by(key: Callable[[Candidate], Any]) -> Callable[[list[Candidate], State], list[Candidate]]:
    def rank(candidates: list[Candidate], _state: State) -> list[Candidate]:
        for c in candidates:
            c.score = float(key(c))
        return sorted(candidates, key=key)  # stable: ties keep the written order

    return rank


def _latency(candidates: list[Candidate], state: State) -> list[Candidate]:
    for c in candidates:
        c.score = state.latency_ms.get(c.route.label, 0.0)  # unknown first: learn it
    return sorted(candidates, key=lambda c: c.score)


def _quality(c: Candidate) -> Decimal:
    return -(c.rates.output.base + c.rates.input.base)


_RANKERS: dict[str, Callable[[list[Candidate], State], list[Candidate]]] = {
    "cost-optimized": _by(lambda c: c.expected_cost),
    "quality-first": _by(_quality),
    "latency": _latency,
    "priority": lambda candidates, _state: list(candidates),
}
