"""Benchmark the router (targets from the router issue).

    .venv/bin/python bench/router.py [--calls 1500]

1. routing decision (features, conditions, filters, ranking, budget and breaker state): p50 <= 50 us
2. end-to-end overhead of Router.complete over plain httpx, same loopback fake server, same run:
   mean <= 0.5 ms (LiteLLM's Router measured +7.3 ms on this machine kind)
3. `import router` <= 0.5 s
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.validate import machine
from router import BudgetLimit, CallContext, ChatRequest, Message, PriceBook, Router
from router.pricing import Rate, Rates
from router.providers import OpenAIProvider
from router.routing import Route, RoutingPolicy, compile_conditions
from tests.router.fake_llm import FakeLLM, serve_fake

FREE = Rates(input=Rate(Decimal(0)), output=Rate(Decimal(0)), source="override")


def spec_policy() -> RoutingPolicy:
    """The product spec's example routing, plus the agent's own llm."""
    return RoutingPolicy(
        strategy="cost-optimized",
        routes=(
            Route("openai", "gpt-4o", (), "agent llm"),
            Route(
                "openai",
                "gpt-4",
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


class _Named:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


def decisions(runs: int) -> None:
    providers = {n: _Named(n, n) for n in ("openai", "anthropic", "local")}
    router = Router(
        providers,  # type: ignore[arg-type]
        prices=PriceBook(overrides={("local", "llama-3-8b"): FREE}),
    )
    ctx = CallContext(budgets=(BudgetLimit("workflow:w:day:d", Decimal(100)),))
    policy = spec_policy()
    for size in (200, 2_000, 8_000, 16_000):
        text = ("Explain why the sky is blue, step by step. " * (size // 43 + 1))[:size]
        request = ChatRequest(messages=(Message("user", text),))
        for _ in range(300):
            router.decide(policy, request, ctx)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            router.decide(policy, request, ctx)
            times.append(time.perf_counter() - t)
        times.sort()
        p50, p99 = statistics.median(times) * 1e6, times[int(len(times) * 0.99)] * 1e6
        print(f"routing decision, {size:>6,}-character prompt: p50 {p50:.1f} us, p99 {p99:.1f} us")


def overhead(calls: int) -> None:
    fake = FakeLLM()
    with serve_fake(fake) as url, httpx.Client(trust_env=False) as client:
        provider = OpenAIProvider("local", base_url=f"{url}/v1", client=client, kind="local")
        router = Router(
            {"local": provider},
            prices=PriceBook(overrides={("local", "llama-3-8b"): FREE}),
        )
        policy = RoutingPolicy(strategy="priority", routes=(Route("local", "llama-3-8b", (), "a"),))
        request = ChatRequest(messages=(Message("user", "hello there"),), max_tokens=64)
        body = {
            "model": "llama-3-8b",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 64,
        }
        raw = json.dumps(body).encode()

        def plain() -> None:
            r = client.post(
                f"{url}/v1/chat/completions",
                content=raw,
                headers={"content-type": "application/json"},
            )
            r.raise_for_status()
            json.loads(r.content)

        def routed() -> None:
            router.complete(policy, request)

        for _ in range(200):  # warm up both paths and the connection
            plain()
            routed()
        direct, via = [], []
        for _ in range(calls):  # interleaved, so drift hits both alike
            t = time.perf_counter()
            plain()
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            routed()
            via.append(time.perf_counter() - t)
        extra = [b - a for a, b in zip(direct, via, strict=True)]
        extra.sort()
        print(
            f"plain httpx to the loopback fake: mean {statistics.mean(direct) * 1e3:.3f} ms, "
            f"p50 {statistics.median(direct) * 1e3:.3f} ms"
        )
        print(
            f"Router.complete to the same server: mean {statistics.mean(via) * 1e3:.3f} ms, "
            f"p50 {statistics.median(via) * 1e3:.3f} ms"
        )
        print(
            f"router overhead: mean {statistics.mean(extra) * 1e3:+.3f} ms, "
            f"p50 {statistics.median(extra) * 1e3:+.3f} ms, "
            f"p95 {extra[int(len(extra) * 0.95)] * 1e3:+.3f} ms ({calls} calls each)"
        )


def import_time() -> None:
    def run(code: str) -> float:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            best = min(best, time.perf_counter() - t)
        return best

    base = run("pass")
    plain = run("import router")
    full = run(
        "import router, router.providers, router.config; "
        "router.PriceBook().rates('openai', 'gpt-4o')"
    )
    print(f"`import router`: {(plain - base) * 1e3:.0f} ms (interpreter start {base * 1e3:.0f} ms)")
    print(
        f"`import router` + provider clients + first price lookup (genai-prices data): "
        f"{(full - base) * 1e3:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    import_time()
    decisions(args.runs)
    overhead(args.calls)


if __name__ == "__main__":
    main()
