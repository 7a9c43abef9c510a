"""The fault matrix: every error class, through the real provider clients and fake servers that
speak the OpenAI and Anthropic wire formats, handled by the router's one retry loop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from router import ChatRequest, MemoryLedger, Message, MidStreamError, PriceBook, Router, Usage
from router.providers import AnthropicProvider, OpenAIProvider
from router.routing import Route, RoutingPolicy
from tests.router.fake_llm import (
    FakeLLM,
    Reply,
    answer,
    connection_reset,
    content_filtered,
    context_too_long,
    error_mid_stream,
    model_not_found,
    overloaded,
    quota_exhausted,
    rate_limited,
    read_timeout,
    server_error,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Setup:
    router: Router
    openai: FakeLLM
    anthropic: FakeLLM
    ledger: MemoryLedger
    clock: Clock

    def calls(self) -> list[str]:
        return [f"{r.provider}:{r.outcome}" for r in self.ledger.records]


@pytest.fixture
def setup() -> Iterator[Setup]:
    openai, anthropic = FakeLLM(), FakeLLM()
    clients = [
        httpx.Client(transport=openai.transport()),
        httpx.Client(transport=anthropic.transport()),
    ]
    clock, ledger = Clock(), MemoryLedger()
    router = Router(
        {
            "openai": OpenAIProvider("openai", api_key="sk-test", client=clients[0]),
            "anthropic": AnthropicProvider("anthropic", api_key="sk-ant", client=clients[1]),
        },
        prices=PriceBook(),
        ledger=ledger,
        clock=clock,
        sleep=clock.sleep,
    )
    yield Setup(router, openai, anthropic, ledger, clock)
    for client in clients:
        client.close()


def policy(*labels: str) -> RoutingPolicy:
    routes = tuple(
        Route(label.split("/")[0], label.split("/")[1], (), f"r{i}")
        for i, label in enumerate(labels)
    )
    return RoutingPolicy(strategy="priority", routes=routes)


OPENAI_FIRST = policy("openai/gpt-4o", "anthropic/claude-3-5-sonnet")
ANTHROPIC_FIRST = policy("anthropic/claude-3-5-sonnet", "openai/gpt-4o")
ASK = ChatRequest(messages=(Message("user", "hello"),), max_tokens=50)


@pytest.mark.parametrize(
    ("first", "fault", "expected_calls", "slept"),
    [
        # rate limited with a short Retry-After: wait it, retry the same route
        ("openai", rate_limited(retry_after="2"), ["openai:rate-limited", "openai:ok"], [2.0]),
        (
            "anthropic",
            rate_limited(retry_after="1"),
            ["anthropic:rate-limited", "anthropic:ok"],
            [1.0],
        ),
        # retry-after-ms wins over retry-after
        (
            "openai",
            rate_limited(retry_after="9", retry_after_ms="250"),
            ["openai:rate-limited", "openai:ok"],
            [0.25],
        ),
        # a Retry-After longer than maxWait: fall back at once, no waiting
        ("openai", rate_limited(retry_after="60"), ["openai:rate-limited", "anthropic:ok"], []),
        # spent quota / spend limit: never retried, fall back
        ("openai", quota_exhausted(), ["openai:quota-exhausted", "anthropic:ok"], []),
        ("anthropic", quota_exhausted(), ["anthropic:quota-exhausted", "openai:ok"], []),
        # overloaded (Anthropic 529), 5xx, connection reset, timeout: retry with backoff
        ("anthropic", overloaded(), ["anthropic:overloaded", "anthropic:ok"], None),
        ("openai", server_error(502), ["openai:server", "openai:ok"], None),
        ("anthropic", server_error(500), ["anthropic:server", "anthropic:ok"], None),
        ("openai", connection_reset(), ["openai:connection", "openai:ok"], None),
        ("anthropic", read_timeout(), ["anthropic:timeout", "anthropic:ok"], None),
        # unknown model: that route is done, fall back
        ("openai", model_not_found(), ["openai:not-found", "anthropic:ok"], []),
        # content policy: another provider
        ("openai", content_filtered(), ["openai:content-policy", "anthropic:ok"], []),
    ],
)
def test_each_fault_is_handled_as_its_class_says(setup, first, fault, expected_calls, slept):
    fake = setup.openai if first == "openai" else setup.anthropic
    fake.push(fault)
    routed = setup.router.complete(OPENAI_FIRST if first == "openai" else ANTHROPIC_FIRST, ASK)
    assert routed.response.text == "ok"
    assert setup.calls() == expected_calls
    if slept is not None:
        assert setup.clock.slept == slept
    else:
        assert len(setup.clock.slept) == 1 and 0 < setup.clock.slept[0] <= 0.25


def test_persistent_failure_falls_back_after_the_attempts(setup):
    setup.openai.push(server_error(503), server_error(503))
    routed = setup.router.complete(OPENAI_FIRST, ASK)
    assert routed.route == "anthropic/claude-3-5-sonnet" and routed.fallback_depth == 1
    assert setup.calls() == ["openai:server", "openai:server", "anthropic:ok"]


@pytest.mark.parametrize("wording", ["openai", "vllm", "sglang", "llamacpp"])
def test_context_too_long_in_each_servers_wording_skips_to_a_larger_window(setup, wording):
    # gpt-4o-mini and gpt-4o have 128k windows; claude-3-5-sonnet 200k
    setup.openai.push(context_too_long(wording))
    routed = setup.router.complete(
        policy("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-sonnet"), ASK
    )
    assert routed.route == "anthropic/claude-3-5-sonnet"
    assert setup.calls() == ["openai:context-too-long", "anthropic:ok"]


def test_a_quota_error_disables_the_deployment_for_later_calls(setup):
    setup.openai.push(quota_exhausted())
    setup.router.complete(OPENAI_FIRST, ASK)
    setup.router.complete(OPENAI_FIRST, ASK)
    assert setup.calls() == ["openai:quota-exhausted", "anthropic:ok", "anthropic:ok"]
    assert len(setup.openai.requests) == 1


def test_an_anthropic_error_event_before_the_first_token_falls_back(setup):
    setup.anthropic.push(error_mid_stream(chunks=()), error_mid_stream(chunks=()))
    events = list(setup.router.stream(ANTHROPIC_FIRST, ASK))
    assert "".join(e.text for e in events) == "ok" and events[-1].done
    assert setup.calls() == ["anthropic:overloaded", "anthropic:overloaded", "openai:ok"]


def test_a_failure_after_the_first_token_surfaces_with_the_partial_text(setup):
    setup.anthropic.push(error_mid_stream(chunks=("Hel", "lo")))
    with pytest.raises(MidStreamError) as caught:
        list(setup.router.stream(ANTHROPIC_FIRST, ASK))
    assert caught.value.partial_text == "Hello"
    assert setup.openai.requests == []  # never replayed elsewhere


def test_an_error_object_inside_an_openai_compatible_stream_falls_back(setup):
    setup.openai.push(error_mid_stream(chunks=()), error_mid_stream(chunks=()))
    events = list(setup.router.stream(OPENAI_FIRST, ASK))
    assert "".join(e.text for e in events) == "ok"
    assert setup.calls()[-1] == "anthropic:ok"


USAGE = Usage(
    input_tokens=12_000, output_tokens=800, cache_read_tokens=9_000, cache_write_tokens=1_000
)


@pytest.mark.parametrize("label", ["openai/gpt-4o", "anthropic/claude-3-5-sonnet"])
def test_streamed_and_plain_calls_cost_exactly_the_same(setup, label):
    fake = setup.openai if label.startswith("openai") else setup.anthropic
    usage = (
        USAGE
        if label.startswith("anthropic")
        else Usage(input_tokens=12_000, output_tokens=800, cache_read_tokens=9_000)
    )
    fake.push(answer("plain answer", usage=usage), Reply(text="streamed answer", usage=usage))
    plain = setup.router.complete(policy(label), ASK)
    events = list(setup.router.stream(policy(label), ASK))
    assert events[-1].usage == usage and plain.response.usage == usage
    costs = [r.cost for r in setup.ledger.records]
    assert costs[0] == costs[1] == plain.cost > Decimal(0)
    rates = setup.router.prices.rates(label.split("/")[0], label.split("/")[1])
    assert rates is not None and plain.cost == rates.cost(usage)


def test_rate_limit_headers_keep_calls_off_an_exhausted_route(setup):
    exhausted = answer(
        "ok",
        headers=(
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "30s"),
        ),
    )
    setup.openai.push(exhausted)
    setup.router.complete(OPENAI_FIRST, ASK)
    routed = setup.router.complete(OPENAI_FIRST, ASK)  # no request is spent on a certain 429
    assert routed.route == "anthropic/claude-3-5-sonnet"
    assert len(setup.openai.requests) == 1
    assert setup.router.decide(OPENAI_FIRST, ASK).chain[-1].route.label == "openai/gpt-4o"


def test_configured_rpm_queues_briefly_then_moves_on():
    from router.ratelimit import RateLimits
    from tests.router.scripted import Scripted

    clock = Clock()
    providers = {
        "openai": Scripted("openai", "openai"),
        "anthropic": Scripted("anthropic", "anthropic"),
    }
    router = Router(
        providers,
        rate_limits=RateLimits({"openai": (60, None)}, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        max_queue=1.0,
    )
    for _ in range(60):  # a full minute's worth at once
        assert router.complete(OPENAI_FIRST, ASK).route == "openai/gpt-4o"
    assert clock.slept == []
    # the next one waits one second for a request to refill: within max_queue
    assert router.complete(OPENAI_FIRST, ASK).route == "openai/gpt-4o"
    assert clock.slept == [pytest.approx(1.0)]
    router.max_queue = 0.5  # now it would have to wait longer than allowed: fall back
    assert router.complete(OPENAI_FIRST, ASK).route == "anthropic/claude-3-5-sonnet"


def test_buckets_refill_and_settle():
    from router.ratelimit import RateLimits

    clock = Clock()
    limits = RateLimits({"d": (None, 1000)}, clock=clock)
    assert limits.admit("d/m", 800) == 0
    assert limits.admit("d/m", 800) == pytest.approx(36.0)  # 600 more tokens at 1000/min
    limits.settle("d/m", 800, 100)  # it used 100, not 800
    assert limits.admit("d/m", 800) == 0
