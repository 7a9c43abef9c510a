"""The router loop on scripted providers: ranking, retries, fallbacks, breakers, budgets, cache."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import (
    BudgetExceeded,
    BudgetLimit,
    CallContext,
    ChatRequest,
    CostState,
    ErrorKind,
    MemoryLedger,
    Message,
    MidStreamError,
    NoRoute,
    PriceBook,
    ProviderError,
    Router,
    Usage,
)
from router.pricing import Rate, Rates
from router.providers.mock import MockProvider
from router.routing import Route, RoutingPolicy, compile_conditions
from tests.router.scripted import Scripted, fault

LLAMA = Rates(
    input=Rate(Decimal(0)), output=Rate(Decimal(0)), context_window=8192, source="override"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make(**kw: Any) -> tuple[Router, dict[str, Scripted], MemoryLedger, Clock]:
    providers = {
        "openai": Scripted("openai", "openai"),
        "anthropic": Scripted("anthropic", "anthropic"),
        "local": Scripted("local", "local"),
    }
    ledger = MemoryLedger()
    clock = Clock()
    prices = PriceBook(overrides={("local", "llama-3-8b"): LLAMA})
    router = Router(
        {**providers, **kw.pop("extra", {})},
        prices=prices,
        ledger=ledger,
        clock=clock,
        sleep=clock.sleep,
        wall=lambda: 1.7e9,
        **kw,
    )
    return router, providers, ledger, clock


def policy(strategy: str = "cost-optimized", **kw: Any) -> RoutingPolicy:
    """The product spec's routing: gpt-4o for hard work, haiku for easy, llama for sensitive."""
    routes = kw.pop(
        "routes",
        (
            Route(
                "openai",
                "gpt-4o",
                compile_conditions([{"complexity": "high"}, {"accuracy": "critical"}]),
                "fallbacks[0]",
            ),
            Route(
                "anthropic",
                "claude-3-haiku",
                compile_conditions([{"complexity": "low"}, {"cost": "priority"}]),
                "fallbacks[1]",
            ),
            Route(
                "local",
                "llama-3-8b",
                compile_conditions([{"data_sensitivity": "high"}, {"cost": "minimal"}]),
                "fallbacks[2]",
            ),
        ),
    )
    return RoutingPolicy(strategy=strategy, routes=routes, **kw)


def ask(text: str = "What is 2+2?", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), **kw)


def test_cost_optimized_picks_the_cheapest_matching_route_and_records_exact_cost():
    router, providers, ledger, _ = make()
    providers["anthropic"].script = [
        Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    ]
    routed = router.complete(policy(), ask())
    assert routed.route == "anthropic/claude-3-haiku" and routed.fallback_depth == 0
    # haiku: $0.25 in, $1.25 out, $0.03 cache read per million
    expected = (Decimal("0.25") * 600 + Decimal("1.25") * 100 + Decimal("0.03") * 400) / 1_000_000
    assert routed.cost == expected and ledger.records[-1].cost == expected
    explained = routed.decision.explain()
    assert explained["chosen"] == "anthropic/claude-3-haiku"
    assert explained["chain"][0]["matched"] == "complexity=low"
    assert explained["features"]["complexity"] == "low"
    # a call without max_tokens is sent with the cap its worst case assumed
    assert providers["anthropic"].calls[0][1].max_tokens == 4096


def test_declared_features_pick_the_route_and_sensitive_data_stays_local():
    router, providers, _, _ = make()
    routed = router.complete(policy(), ask(features={"accuracy": "critical"}))
    assert routed.route == "openai/gpt-4o"
    sensitive = router.complete(policy(), ask(features={"data_sensitivity": "high"}))
    assert sensitive.route == "local/llama-3-8b"
    dropped = dict(sensitive.decision.dropped)
    assert dropped["openai/gpt-4o"].startswith("data_sensitivity high")
    # the manifest's declaration cannot be lowered by the agent
    declared = policy(declared={"data_sensitivity": "high"})
    assert (
        router.complete(declared, ask(features={"data_sensitivity": "low"})).route
        == "local/llama-3-8b"
    )


def test_a_retry_after_within_max_wait_retries_the_same_route():
    router, providers, ledger, clock = make()
    providers["anthropic"].script = [fault(ErrorKind.RATE_LIMITED, retry_after=1.5)]
    routed = router.complete(policy(), ask())
    assert routed.route == "anthropic/claude-3-haiku" and clock.slept == [1.5]
    assert [(r.outcome, r.attempt) for r in ledger.records] == [("rate-limited", 1), ("ok", 2)]


def test_a_long_retry_after_falls_back_at_once_and_cools_the_route():
    router, providers, ledger, clock = make()
    providers["anthropic"].script = [fault(ErrorKind.RATE_LIMITED, retry_after=60)]
    routed = router.complete(policy(), ask())
    assert clock.slept == [] and routed.fallback_depth == 1
    assert routed.route == "local/llama-3-8b"  # next cheapest (non-matching routes follow)
    assert routed.attempts[0].startswith("anthropic/claude-3-haiku: rate-limited")
    # the next request tries it last while it cools down
    again = router.decide(policy(), ask())
    assert [c.route.label for c in again.chain][-1] == "anthropic/claude-3-haiku"
    assert again.chain[-1].cooling_until == pytest.approx(clock.now + 60)


def test_the_later_of_two_retry_after_deadlines_holds():
    router, providers, _, clock = make(max_attempts=1)
    label = "anthropic/claude-3-haiku"
    providers["anthropic"].script = [fault(ErrorKind.RATE_LIMITED, retry_after=30)]
    router.complete(policy(), ask())
    providers["anthropic"].script = [fault(ErrorKind.RATE_LIMITED, retry_after=5)]
    router.health.failure(label, "anthropic", fault(ErrorKind.RATE_LIMITED, retry_after=5))
    assert router.health.cooling()[label] == pytest.approx(clock.now + 30)


def test_spent_quota_disables_the_deployment_without_retrying():
    router, providers, ledger, clock = make()
    providers["anthropic"].script = [fault(ErrorKind.QUOTA_EXHAUSTED, message="spend limit")]
    routed = router.complete(policy(), ask())
    assert routed.route == "local/llama-3-8b" and clock.slept == []
    assert len(providers["anthropic"].calls) == 1
    decision = router.decide(policy(), ask())
    assert (
        "anthropic/claude-3-haiku",
        "disabled: quota-exhausted: spend limit",
    ) in decision.dropped
    router.health.enable("anthropic")
    assert router.decide(policy(), ask()).chain[0].route.label == "anthropic/claude-3-haiku"


def test_context_too_long_skips_routes_whose_window_is_not_larger():
    routes = (
        Route("openai", "gpt-4o-mini", (), "a"),  # 128k
        Route("openai", "gpt-4o", (), "b"),  # 128k: not larger, skipped
        Route("anthropic", "claude-3-5-sonnet", (), "c"),  # 200k
    )
    router, providers, _, _ = make()
    providers["openai"].script = [fault(ErrorKind.CONTEXT_TOO_LONG)]
    routed = router.complete(policy("priority", routes=routes), ask())
    assert routed.route == "anthropic/claude-3-5-sonnet"
    assert len(providers["openai"].calls) == 1
    assert any("skipped (context window not larger than 128,000)" in a for a in routed.attempts)


def test_content_policy_moves_to_another_provider_kind():
    routes = (
        Route("openai", "gpt-4o-mini", (), "a"),
        Route("openai", "gpt-4o", (), "b"),
        Route("anthropic", "claude-3-haiku", (), "c"),
    )
    router, providers, _, _ = make()
    providers["openai"].script = [fault(ErrorKind.CONTENT_POLICY)]
    assert (
        router.complete(policy("priority", routes=routes), ask()).route
        == "anthropic/claude-3-haiku"
    )


def test_a_bad_request_is_not_retried_anywhere():
    router, providers, _, _ = make()
    providers["anthropic"].script = [fault(ErrorKind.BAD_REQUEST)]
    with pytest.raises(ProviderError):
        router.complete(policy(), ask())
    assert providers["local"].calls == [] and providers["openai"].calls == []


def test_when_every_route_fails_the_error_lists_each_failure():
    router, providers, _, _ = make(max_attempts=1)
    for p in providers.values():
        p.script = [fault(ErrorKind.SERVER, message="boom")]
    with pytest.raises(NoRoute) as caught:
        router.complete(policy(), ask())
    assert set(caught.value.reasons) == {
        "anthropic/claude-3-haiku",
        "local/llama-3-8b",
        "openai/gpt-4o",
    }


def test_a_fallback_never_restarts_earlier_routes():
    router, providers, ledger, _ = make(max_attempts=2)
    providers["anthropic"].script = [fault(ErrorKind.SERVER)] * 2
    providers["local"].script = [fault(ErrorKind.SERVER)] * 2
    router.complete(policy(), ask())
    assert [r.provider for r in ledger.records] == ["anthropic"] * 2 + ["local"] * 2 + ["openai"]


def test_streams_fall_back_before_the_first_token_and_not_after():
    router, providers, _, _ = make()
    providers["anthropic"].script = [[fault(ErrorKind.OVERLOADED)], [fault(ErrorKind.OVERLOADED)]]
    providers["local"].script = [["he", "llo", None]]  # no usage sent: estimated
    events = list(router.stream(policy(), ask()))
    assert "".join(e.text for e in events) == "hello"
    assert events[-1].done and events[-1].usage is not None and events[-1].usage.estimated
    providers["anthropic"].script = [["par", "tial", fault(ErrorKind.OVERLOADED)]]
    with pytest.raises(MidStreamError) as caught:
        list(router.stream(policy(), ask("another question")))
    assert caught.value.partial_text == "partial"


def test_streamed_and_plain_calls_cost_the_same():
    usage = Usage(
        input_tokens=5000, output_tokens=700, cache_read_tokens=1200, cache_write_tokens=300
    )
    router, providers, _, _ = make()
    providers["anthropic"].script = [usage, ["a", "b", usage]]
    plain = router.complete(policy(), ask())
    events = list(router.stream(policy(), ask()))
    streamed = router.prices.rates("anthropic", "claude-3-haiku")
    assert streamed is not None and events[-1].usage == usage
    assert plain.cost == streamed.cost(usage) and plain.cost > 0


def test_fifty_concurrent_calls_never_overshoot_the_budget():
    router, providers, ledger, _ = make()
    for _ in range(60):
        providers["openai"].script.append(Usage(input_tokens=75_000, output_tokens=100))
    routes = (Route("openai", "gpt-4o", (), "a"),)
    limit = Decimal("0.45")
    ctx = CallContext(budgets=(BudgetLimit("workflow:w:day:x", limit),))
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            router.complete(policy(routes=routes), ask("x" * 75_000, max_tokens=100), ctx)
            result = "ok"
        except BudgetExceeded:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = router.budgets.spent("workflow:w:day:x")
    assert spent <= limit and outcomes.count("ok") >= 1 and "refused" in outcomes
    assert sum(r.cost for r in ledger.records) == spent


def test_an_exhausted_budget_downgrades_to_a_free_route_or_refuses():
    router, _, _, _ = make()
    ctx = CallContext(budgets=(BudgetLimit("execution:e1", Decimal("0.0000001")),))
    assert router.complete(policy(), ask(), ctx).route == "local/llama-3-8b"  # $0 stays allowed
    paid_only = policy(routes=(Route("openai", "gpt-4o", (), "a"),))
    with pytest.raises(BudgetExceeded):
        router.complete(paid_only, ask(), ctx)
    refusing = policy(budget_action="refuse")
    routed = router.complete(refusing, ask(), ctx)  # refuse keeps free routes too
    assert routed.route == "local/llama-3-8b"


def test_unknown_prices_are_refused_or_charged_at_the_highest_known_rate():
    routes = (Route("openai", "gpt-4o", (), "a"), Route("openai", "not-a-model", (), "b"))
    router, providers, _, _ = make(unknown_price="refuse")
    decision = router.decide(policy("priority", routes=routes), ask())
    assert ("openai/not-a-model", "price unknown (configure a price override)") in decision.dropped
    router, providers, _, _ = make()
    providers["openai"].script = [fault(ErrorKind.SERVER)] * 2 + [
        Usage(input_tokens=100, output_tokens=10)
    ]
    routed = router.complete(policy("priority", routes=routes), ask())
    assert routed.route == "openai/not-a-model" and routed.cost > 0
    assert routed.price_source == "unknown price: charged at the highest known rate"


def test_deterministic_calls_are_cached_per_sensitivity_scope():
    router, providers, ledger, _ = make()
    first = router.complete(policy(), ask(temperature=0))
    second = router.complete(policy(), ask(temperature=0))
    assert second.cache_hit and second.cost == 0 and second.response == first.response
    assert len(providers["anthropic"].calls) == 1 and ledger.records[-1].cache_hit
    router.complete(policy(), ask(temperature=0.7))
    router.complete(policy(), ask(temperature=0.7))
    assert len(providers["anthropic"].calls) == 3  # not deterministic: not cached


def test_the_mock_provider_is_labelled_and_free():
    router, _, ledger, _ = make(extra={"mock": MockProvider()})
    routed = router.complete(policy(routes=(Route("mock", "mock", (), "agent llm"),)), ask("hi"))
    assert routed.response.text.startswith("[mock ") and routed.cost == 0
    assert routed.response.usage.estimated and ledger.records[-1].kind == "mock"


KINDS = ["openai", "anthropic", "local", "mock"]


@settings(max_examples=200, deadline=None)
@given(
    routes=st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.sampled_from(["gpt-4o", "claude-3-haiku", "llama-3-8b", "mock"]),
        ),
        min_size=1,
        max_size=6,
    ),
    faults=st.lists(st.sampled_from(list(ErrorKind) + [None]), max_size=8),
    strategy=st.sampled_from(["cost-optimized", "quality-first", "latency", "priority"]),
    budget=st.sampled_from([None, Decimal(0), Decimal("0.01")]),
    trusted_openai=st.booleans(),
)
def test_sensitive_requests_never_leave_trusted_deployments(
    routes, faults, strategy, budget, trusted_openai
):
    providers = {k: Scripted(k, k) for k in KINDS}
    for p in providers.values():
        p.script = [fault(f) if f else Usage(input_tokens=5, output_tokens=5) for f in faults]
    prices = PriceBook(
        overrides={
            ("local", "*"): LLAMA,
            ("openai", "*"): Rates(input=Rate(Decimal(1)), output=Rate(Decimal(2)), source="o"),
        }
    )
    router = Router(
        providers, trusted=["openai"] if trusted_openai else [], prices=prices, sleep=lambda s: None
    )
    policy_ = RoutingPolicy(
        strategy=strategy,
        routes=tuple(Route(d, m, (), f"r{i}") for i, (d, m) in enumerate(routes)),
        declared={"data_sensitivity": "high"},
    )
    ctx = CallContext(budgets=(BudgetLimit("x", budget),) if budget is not None else ())
    try:
        router.complete(policy_, ask(), ctx)
    except (NoRoute, ProviderError):
        pass
    allowed = {"local", "mock"} | ({"openai"} if trusted_openai else set())
    for name, p in providers.items():
        if name not in allowed:
            assert p.calls == [], f"sensitive request sent to {name}"


def test_the_reservation_bounds_prompts_that_tokenize_densely():
    router, providers, _, _ = make()
    text = "退款" * 2000  # 4,000 characters that are 4,000 tokens, not len/4 = 1,000
    providers["openai"].script = [Usage(input_tokens=4000, output_tokens=10)] * 5
    routes = (Route("openai", "gpt-4o", (), "a"),)
    cost = PriceBook().rates("openai", "gpt-4o").cost(Usage(input_tokens=4000, output_tokens=10))
    ctx = CallContext(budgets=(BudgetLimit("x", cost * 2 + Decimal("0.000001")),))
    done = 0
    for _ in range(5):
        try:
            router.complete(policy(routes=routes), ask(text, max_tokens=10), ctx)
            done += 1
        except BudgetExceeded:
            break
    assert router.budgets.spent("x") <= cost * 2 + Decimal("0.000001")


def test_a_malformed_answer_is_a_server_error_and_stays_counted_at_its_reservation():
    class Broken(Scripted):
        def complete(self, model, request, *, timeout):
            raise AttributeError("'str' object has no attribute 'get'")

    router, providers, ledger, _ = make(
        extra={"broken": Broken("broken", "openai")}, max_attempts=1
    )
    routes = (Route("broken", "gpt-4o", (), "a"), Route("openai", "gpt-4o-mini", (), "b"))
    ctx = CallContext(budgets=(BudgetLimit("x", Decimal(1)),))
    routed = router.complete(policy("priority", routes=routes), ask(), ctx)
    assert routed.route == "openai/gpt-4o-mini"
    assert routed.attempts[0].startswith("broken/gpt-4o: server (unreadable answer: AttributeError")
    # the provider may have answered (and billed) what could not be read: the worst case stays
    broken = ledger.records[0]
    assert (broken.outcome, broken.state) == ("server", CostState.SETTLED)
    assert broken.cost == broken.reserved > 0 and broken.usage.estimated
    spent = broken.cost + routed.cost
    assert router.budgets.room([BudgetLimit("x", Decimal(1))]) == Decimal(1) - spent


def test_an_abandoned_stream_is_charged_for_what_it_handed_on():
    router, providers, ledger, _ = make()
    providers["anthropic"].script = [
        ["one ", "two ", "three", Usage(input_tokens=10, output_tokens=3)]
    ]
    limit = BudgetLimit("x", Decimal(1))
    stream = router.stream(policy(), ask(), CallContext(budgets=(limit,)))
    assert next(stream).text == "one "
    stream.close()
    assert ledger.records[-1].outcome == "abandoned" and ledger.records[-1].usage.estimated
    assert router.budgets.room([limit]) == Decimal(1) - ledger.records[-1].cost  # nothing leaked


def test_nothing_is_tried_once_the_deadline_has_passed():
    router, providers, _, clock = make(max_attempts=1)
    providers["anthropic"].script = [fault(ErrorKind.TIMEOUT)]

    def slow(*_a, **_k):
        clock.now += 100
        raise fault(ErrorKind.TIMEOUT)

    providers["anthropic"].complete = slow  # type: ignore[method-assign]
    with pytest.raises(NoRoute) as caught:
        router.complete(policy(), ask(), CallContext(deadline=clock.now + 10))
    assert providers["local"].calls == [] and providers["openai"].calls == []
    assert "the call's deadline has passed" in str(caught.value)


def test_an_auth_failure_skips_the_deployments_other_routes_in_the_same_call():
    routes = (
        Route("openai", "gpt-4o", (), "a"),
        Route("openai", "gpt-4o-mini", (), "b"),
        Route("anthropic", "claude-3-haiku", (), "c"),
    )
    router, providers, _, _ = make()
    providers["openai"].script = [fault(ErrorKind.AUTH)]
    routed = router.complete(policy("priority", routes=routes), ask())
    assert routed.route == "anthropic/claude-3-haiku" and len(providers["openai"].calls) == 1


def test_an_unreadable_sensitivity_fails_closed():
    router, _, _, _ = make()
    assert router.complete(policy(), ask(features={"data_sensitivity": "HIGH"})).route == (
        "local/llama-3-8b"
    )


def test_the_manifests_max_tokens_caps_and_temperature_defaults_the_call():
    router, providers, _, _ = make()
    capped = policy(max_tokens=200, temperature=0)
    router.complete(capped, ask(max_tokens=100_000))
    router.complete(capped, ask())
    sent = [request for _, request in providers["anthropic"].calls]
    assert [r.max_tokens for r in sent] == [200] and sent[0].temperature == 0  # 2nd: cached
