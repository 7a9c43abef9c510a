"""The router wired into the daemon: the sandbox's ``llm-complete`` host function, the cost
ledger in the store, and budgets that survive restarts.

An agent calls ``llm.complete(prompt=..., messages=..., temperature=..., max_tokens=...,
json=..., features={...})``; the guest sends that as JSON. :func:`llm_callback` turns it into a
:class:`router.ChatRequest`, routes it under the agent's compiled policy and returns

    {"text", "provider", "model", "route", "usage": {...}, "cost_usd", "cache_hit",
     "fallback_depth", "mock": bool}

``mock`` is true when the mock provider answered (the text starts with ``[mock``). Every
failure becomes the guest's error value (``HostCallError``), never an exception in wasmtime.

The ledger is written before each request leaves (:class:`StoreLedger`), so budgets seeded from
it at start (:func:`budget_seed`) see the calls a killed daemon had in flight.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agentflowd.observability import Metrics
from agentflowd.store import LlmCall, LlmCallState, Store
from router import (
    CallContext,
    ChatRequest,
    CostRecord,
    CostState,
    Message,
    RouterError,
    RoutingPolicy,
)
from router.features import FEATURE_VALUES
from router.router import Router
from sandbox import HostCallError

__all__ = ["StoreLedger", "budget_seed", "llm_callback", "parse_request"]

_OPTIONS = {"temperature", "max_tokens", "json", "features", "cache", "stop", "tools"}


def parse_request(text: str) -> ChatRequest:
    """The guest's request JSON as a ChatRequest; HostCallError names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HostCallError(f"llm request is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HostCallError("llm request must be a JSON object")
    unknown = set(data) - _OPTIONS - {"prompt", "messages", "system"}
    if unknown:
        raise HostCallError(f"unknown llm option(s): {', '.join(sorted(unknown))}")
    messages: list[Message] = []
    if isinstance(data.get("system"), str):
        messages.append(Message("system", data["system"]))
    for item in data.get("messages") or ():
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise HostCallError("messages are objects with 'role' and 'content' strings")
        messages.append(Message(str(item.get("role", "user")), item["content"]))
    if isinstance(data.get("prompt"), str):
        messages.append(Message("user", data["prompt"]))
    if not messages:
        raise HostCallError("an llm request needs a prompt or messages")
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise HostCallError("max_tokens must be a positive integer")
    features = data.get("features") or {}
    if not isinstance(features, dict):
        raise HostCallError("features must be an object")
    for name, value in features.items():
        allowed = FEATURE_VALUES.get(name)
        if allowed is None:
            raise HostCallError(f"unknown feature {name!r} (known: {', '.join(FEATURE_VALUES)})")
        if value not in allowed:
            raise HostCallError(f"feature {name}: {value!r} is not one of {list(allowed)}")
    return ChatRequest(
        messages=tuple(messages),
        temperature=data.get("temperature"),
        max_tokens=max_tokens,
        json=bool(data.get("json", False)),
        tools=tuple(data.get("tools") or ()),
        stop=tuple(data.get("stop") or ()),
        cache=data.get("cache"),
        features=features,
    )


def llm_callback(
    router: Router, policy: RoutingPolicy, context: Callable[[], CallContext]
) -> Callable[[str], str]:
    """The ``llm_complete`` callback of one step (``context`` gives its budgets and deadline)."""

    def complete(text: str) -> str:
        request = parse_request(text)
        try:
            routed = router.complete(policy, request, context())
        except RouterError as exc:
            raise HostCallError(str(exc)) from exc
        response = routed.response
        usage = response.usage
        answer: dict[str, Any] = {
            "text": response.text,
            "provider": response.provider,
            "model": response.model,
            "route": routed.route,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "estimated": usage.estimated,
            },
            "cost_usd": str(routed.cost),
            "cache_hit": routed.cache_hit,
            "fallback_depth": routed.fallback_depth,
            "mock": router.providers[routed.route.split("/", 1)[0]].kind == "mock",
        }
        if response.tool_calls:
            answer["tool_calls"] = list(response.tool_calls)
        return json.dumps(answer)

    return complete


class StoreLedger:
    """The router's ledger kept in the daemon's store (table ``llm_calls``), and counted in the
    token and cost metrics.

    An attempt is two writes: :meth:`record` journals it, reserved at its worst case, before
    its request leaves (a failure here refuses the attempt: nothing is sent that the ledger
    does not hold), and :meth:`settle` rewrites the row once the attempt is over. A cache hit is
    one write, settled at zero. The metrics count settled spend only: a reservation is not yet
    spend, and one a crash leaves behind is counted by the ledger, not by a process that died.
    """

    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics

    def record(self, entry: CostRecord) -> int:
        """One attempt as a row (reserved, or a settled cache hit); the row's id."""
        if entry.state is not CostState.RESERVED:
            self._count(entry)
        return self.store.record_llm_call(_as_call(entry))

    def settle(self, key: int, entry: CostRecord) -> None:
        """How the attempt journaled as row ``key`` ended."""
        self._count(entry)
        self.store.settle_llm_call(key, _as_call(entry))

    def _count(self, entry: CostRecord) -> None:
        if self.metrics is None:
            return
        usage = entry.usage
        tokens = self.metrics.llm_tokens
        tokens.labels(entry.provider, entry.model, "input").inc(usage.input_tokens)
        tokens.labels(entry.provider, entry.model, "output").inc(usage.output_tokens)
        self.metrics.llm_cost.labels(entry.provider, entry.model).inc(float(entry.cost))


def _as_call(entry: CostRecord) -> LlmCall:
    usage = entry.usage
    return LlmCall(
        at=datetime.fromtimestamp(entry.at, UTC),
        workflow=entry.workflow,
        agent=entry.agent,
        execution=entry.execution,
        step=entry.step,
        provider=entry.provider,
        kind=entry.kind,
        model=entry.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens + usage.cache_write_1h_tokens,
        estimated=usage.estimated,
        cost=entry.cost,
        price_source=entry.price_source,
        latency_ms=entry.latency_ms,
        cache_hit=entry.cache_hit,
        fallback_depth=entry.fallback_depth,
        attempt=entry.attempt,
        outcome=entry.outcome,
        reason=entry.reason,
        error=entry.error,
        state=LlmCallState(entry.state.value),
        reserved=entry.reserved,
    )


def budget_seed(store: Store) -> Callable[[str], Decimal]:
    """What a budget scope had spent, from the ledger (so a restart does not reset budgets).

    Scopes are those of :func:`router.budget_limits`: ``execution:ID``,
    ``workflow:NAME:day:YYYY-MM-DD`` and ``workflow:NAME:month:YYYY-MM``. A row still reserved
    (its process died with the call in flight) counts at its reservation, so a budget holds
    across a kill -9: every call that may have been paid is counted, at no less than it cost.
    """

    def spent(scope: str) -> Decimal:
        parts = scope.split(":")
        if parts[0] == "execution" and len(parts) == 2:
            totals = store.llm_costs(by="execution", execution=parts[1])
        elif parts[0] == "workflow" and len(parts) == 4 and parts[2] in ("day", "month"):
            if parts[2] == "day":
                start = datetime.fromisoformat(parts[3]).replace(tzinfo=UTC)
                end = start + timedelta(days=1)
            else:
                start = datetime.strptime(parts[3], "%Y-%m").replace(tzinfo=UTC)
                end = (start + timedelta(days=32)).replace(day=1)
            totals = store.llm_costs(by="workflow", workflow=parts[1], since=start, until=end)
        else:
            return Decimal(0)
        return sum((total for total, _n in totals.values()), Decimal(0))

    return spent
