"""Every attempt is journaled in the ledger at its reservation before its request leaves, then
settled (or released) after; what a failed attempt stays counted at depends on how far its
request got (``Delivery``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from router import (
    BudgetLimit,
    CallContext,
    ChatRequest,
    CostRecord,
    CostState,
    Delivery,
    ErrorKind,
    LedgerError,
    MemoryLedger,
    Message,
    PriceBook,
    ProviderError,
    Router,
    Usage,
)
from router.providers import OpenAIProvider
from router.routing import Route, RoutingPolicy
from router.types import ChatResponse
from tests.router.fake_llm import (
    FakeLLM,
    Reply,
    connect_refused,
    connection_reset,
    rate_limited,
    read_timeout,
    server_error,
)
from tests.router.scripted import Scripted, fault

ASK = ChatRequest(messages=(Message("user", "What is 2+2?"),), max_tokens=50)
LIMIT = BudgetLimit("workflow:w:day:2026-11-24", Decimal(1))
CTX = CallContext(workflow="w", agent="a", execution="e", step="s#1", budgets=(LIMIT,))


def policy(*labels: str) -> RoutingPolicy:
    routes = tuple(
        Route(label.split("/")[0], label.split("/")[1], (), f"r{i}")
        for i, label in enumerate(labels)
    )
    return RoutingPolicy(strategy="priority", routes=routes)


def router_for(providers: dict[str, object], ledger: MemoryLedger, **kw: object) -> Router:
    return Router(
        providers,  # type: ignore[arg-type]
        prices=PriceBook(),
        ledger=ledger,
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


class Watching(Scripted):
    """A provider that notes what the ledger held when the request reached it."""

    def __init__(self, ledger: MemoryLedger) -> None:
        super().__init__("openai", "openai")
        self.ledger = ledger
        self.seen: list[CostRecord] = []

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        self.seen = list(self.ledger.records)
        return super().complete(model, request, timeout=timeout)


def test_an_attempt_is_journaled_at_its_reservation_before_the_request_leaves():
    ledger = MemoryLedger()
    provider = Watching(ledger)
    router = router_for({"openai": provider}, ledger)
    worst = router.decide(policy("openai/gpt-4o"), ASK, CTX).chain[0].worst_cost
    routed = router.complete(policy("openai/gpt-4o"), ASK, CTX)
    [journaled] = provider.seen
    assert journaled.state is CostState.RESERVED and journaled.outcome == "pending"
    assert journaled.cost == journaled.reserved == worst > routed.cost > 0
    assert journaled.usage.output_tokens == 50 and journaled.usage.estimated
    assert (journaled.workflow, journaled.execution, journaled.step) == ("w", "e", "s#1")
    [settled] = ledger.records
    assert settled.state is CostState.SETTLED and settled.outcome == "ok"
    assert settled.cost == routed.cost and settled.reserved == worst
    assert settled.at == journaled.at  # the call stays in the day it started
    assert router.budgets.spent(LIMIT.scope) == routed.cost


def test_a_record_never_settled_counts_at_its_reservation():
    class Settles(MemoryLedger):  # a store that fails at the wrong moment
        def settle(self, key: int, entry: CostRecord) -> None:
            raise OSError("database is locked")

    ledger = Settles()
    router = router_for({"openai": Scripted("openai")}, ledger)
    routed = router.complete(policy("openai/gpt-4o"), ASK, CTX)  # the call itself succeeds
    [record] = ledger.records
    assert record.state is CostState.RESERVED and record.cost == record.reserved > routed.cost
    assert ledger.totals(by="state") == {"reserved": record.reserved}


def test_a_ledger_that_cannot_journal_refuses_the_attempt_and_sends_nothing():
    class Full(MemoryLedger):
        def record(self, entry: CostRecord) -> int:
            raise OSError("disk full")

    provider = Scripted("openai")
    router = router_for({"openai": provider}, Full())
    with pytest.raises(LedgerError, match=r"openai/gpt-4o: .*OSError: disk full.*not sent"):
        router.complete(policy("openai/gpt-4o"), ASK, CTX)
    assert provider.calls == []
    assert router.budgets.room([LIMIT]) == LIMIT.limit  # the reservation was let go
    with pytest.raises(LedgerError):
        list(router.stream(policy("openai/gpt-4o"), ASK, CTX))
    assert provider.calls == []


@pytest.mark.parametrize(
    ("error", "state"),
    [
        # the provider answered with an error (status, or a classified error): billed nothing
        (fault(ErrorKind.RATE_LIMITED), CostState.RELEASED),
        (ProviderError(ErrorKind.SERVER, "boom", status=503), CostState.RELEASED),
        (ProviderError(ErrorKind.TIMEOUT, "408", status=408), CostState.RELEASED),
        # the connection was never made
        (
            ProviderError(ErrorKind.CONNECTION, "refused", delivery=Delivery.UNSENT),
            CostState.RELEASED,
        ),
        # it left and nothing readable came back: maybe billed in full
        (fault(ErrorKind.TIMEOUT), CostState.SETTLED),
        (fault(ErrorKind.CONNECTION), CostState.SETTLED),
    ],
)
def test_a_failed_attempt_stays_counted_by_how_far_its_request_got(error, state):
    ledger = MemoryLedger()
    router = router_for({"openai": Scripted("openai", script=[error])}, ledger, max_attempts=1)
    with pytest.raises(Exception, match="every route failed"):
        router.complete(policy("openai/gpt-4o"), ASK, CTX)
    [record] = ledger.records
    assert record.state == state and record.outcome == error.kind.value
    expected = record.reserved if state == CostState.SETTLED else Decimal(0)
    assert record.cost == expected and record.reserved > 0
    assert router.budgets.spent(LIMIT.scope) == expected
    assert router.budgets.room([LIMIT]) == LIMIT.limit - expected  # nothing left reserved


def test_a_failure_with_reported_usage_is_settled_at_that_usage():
    usage = Usage(input_tokens=100, output_tokens=7)
    withheld = ProviderError(ErrorKind.CONTENT_POLICY, "withheld", usage=usage)
    ledger = MemoryLedger()
    router = router_for({"openai": Scripted("openai", script=[withheld])}, ledger)
    with pytest.raises(Exception, match="every route failed"):
        router.complete(policy("openai/gpt-4o"), ASK, CTX)
    rates = router.prices.rates("openai", "gpt-4o")
    assert rates is not None
    [record] = ledger.records
    assert record.state is CostState.SETTLED and record.cost == rates.cost(usage) > 0


def test_retries_and_fallbacks_are_each_their_own_reserved_record():
    ledger = MemoryLedger()
    openai = Scripted("openai", script=[fault(ErrorKind.TIMEOUT), fault(ErrorKind.SERVER)])
    router = router_for({"openai": openai, "anthropic": Scripted("anthropic", "anthropic")}, ledger)
    routed = router.complete(policy("openai/gpt-4o", "anthropic/claude-3-haiku"), ASK, CTX)
    assert routed.route == "anthropic/claude-3-haiku"
    assert [(r.provider, r.attempt, r.outcome, r.state) for r in ledger.records] == [
        ("openai", 1, "timeout", CostState.SETTLED),
        ("openai", 2, "server", CostState.RELEASED),
        ("anthropic", 1, "ok", CostState.SETTLED),
    ]
    assert all(r.reserved > 0 for r in ledger.records)
    assert sum(r.cost for r in ledger.records) == router.budgets.spent(LIMIT.scope)


def test_a_cache_hit_is_one_settled_record_at_zero_with_no_reservation():
    ledger = MemoryLedger()
    router = router_for({"openai": Scripted("openai")}, ledger)
    cached = ChatRequest(messages=ASK.messages, max_tokens=50, temperature=0)
    router.complete(policy("openai/gpt-4o"), cached, CTX)
    hit = router.complete(policy("openai/gpt-4o"), cached, CTX)
    assert hit.cache_hit
    record = ledger.records[-1]
    assert len(ledger.records) == 2 and record.cache_hit
    assert (record.state, record.cost, record.reserved) == (
        CostState.SETTLED,
        Decimal(0),
        Decimal(0),
    )


def test_a_stream_is_journaled_before_it_starts_and_settled_when_done():
    ledger = MemoryLedger()
    provider = Scripted("openai", script=[["he", "llo", Usage(input_tokens=9, output_tokens=2)]])
    router = router_for({"openai": provider}, ledger)
    stream = router.stream(policy("openai/gpt-4o"), ASK, CTX)
    assert next(stream).text == "he"
    assert ledger.records[0].state is CostState.RESERVED  # in flight
    events = list(stream)
    assert events[-1].done
    [record] = ledger.records
    assert record.state is CostState.SETTLED and 0 < record.cost < record.reserved


def test_a_stream_dropped_after_text_stays_counted_at_its_reservation():
    ledger = MemoryLedger()
    provider = Scripted("openai", script=[["he", fault(ErrorKind.CONNECTION)]])
    router = router_for({"openai": provider}, ledger)
    with pytest.raises(Exception, match="stream failed"):
        list(router.stream(policy("openai/gpt-4o"), ASK, CTX))
    [record] = ledger.records
    assert record.state is CostState.SETTLED and record.cost == record.reserved


# -- through a real client: the transport's failure decides the delivery ----------------------


@pytest.fixture
def fake() -> Iterator[tuple[FakeLLM, Router, MemoryLedger]]:
    llm, ledger = FakeLLM(), MemoryLedger()
    client = httpx.Client(transport=llm.transport())
    provider = OpenAIProvider("openai", api_key="sk-test", client=client)
    yield llm, router_for({"openai": provider}, ledger, max_attempts=1), ledger
    client.close()


@pytest.mark.parametrize(
    ("reply", "delivery", "state"),
    [
        (connect_refused(), Delivery.UNSENT, CostState.RELEASED),
        (connection_reset(), Delivery.UNKNOWN, CostState.SETTLED),
        (read_timeout(), Delivery.UNKNOWN, CostState.SETTLED),
        (rate_limited(retry_after="1"), Delivery.ANSWERED, CostState.RELEASED),
        (server_error(), Delivery.ANSWERED, CostState.RELEASED),
    ],
)
def test_the_client_says_how_far_a_request_got(fake, reply: Reply, delivery, state):
    llm, router, ledger = fake
    llm.push(reply)
    with pytest.raises(Exception, match="every route failed"):
        router.complete(policy("openai/gpt-4o"), ASK, CTX)
    [record] = ledger.records
    assert record.state is state
    assert record.cost == (record.reserved if delivery is Delivery.UNKNOWN else 0)


def test_an_unreadable_answer_may_have_been_billed(fake):
    _llm, router, ledger = fake

    class Garbled(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=b"<html>not json</html>")

    client = httpx.Client(transport=Garbled())
    router.providers["openai"] = OpenAIProvider("openai", api_key="sk-test", client=client)
    try:
        with pytest.raises(Exception, match="every route failed"):
            router.complete(policy("openai/gpt-4o"), ASK, CTX)
    finally:
        client.close()
    [record] = ledger.records
    assert record.state is CostState.SETTLED and record.cost == record.reserved > 0
