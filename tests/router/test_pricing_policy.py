"""Prices (exact against genai-prices), features, conditions, policies from manifests, config."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price

from agentflowd.manifest import canonical_dict, load_sources
from agentflowd.manifest.load import SourceFile
from router import ChatRequest, ConfigError, Message, PriceBook, Usage, policy_for_agent
from router.config import build_router, load_config
from router.features import extract
from router.policy import budget_limits
from router.routing import compile_conditions
from tests.manifests import VALID

USAGES = [
    Usage(input_tokens=1000, output_tokens=100),
    Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400, cache_write_tokens=100),
    Usage(input_tokens=250_000, output_tokens=2000, cache_read_tokens=50_000),  # past a tier
    Usage(input_tokens=7, output_tokens=0),
]
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4"),
    ("anthropic", "claude-3-haiku"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-sonnet"),
]


@pytest.mark.parametrize(("provider", "model"), MODELS)
@pytest.mark.parametrize("usage", USAGES, ids=["plain", "cached", "tiered", "tiny"])
def test_our_arithmetic_equals_genai_prices(provider, model, usage):
    rates = PriceBook().rates(provider, model)
    assert rates is not None and rates.source.startswith("genai-prices ")
    theirs = calc_price(
        GUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_ref=model,
        provider_id=provider,
        genai_request_timestamp=datetime.now(UTC),
    )
    assert rates.cost(usage) == theirs.total_price


def test_unknown_models_have_no_price_and_overrides_win():
    book = PriceBook()
    assert book.rates("openai", "no-such-model") is None
    assert book.rates("local", "llama-3-8b") is None  # never silently $0
    config = load_config({"prices": {"local/llama-3-8b": {"input": 0, "output": 0}}})
    assert PriceBook(overrides=dict(config.prices)).rates("local", "x", "local") is None
    rates = PriceBook(overrides=dict(config.prices)).rates("local", "llama-3-8b", "local")
    assert rates is not None and rates.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0


def test_worst_case_bounds_every_actual_cost():
    rates = PriceBook().rates("anthropic", "claude-sonnet-4-5")
    assert rates is not None
    worst = rates.worst_case(300_000, 1000)
    for usage in (
        Usage(input_tokens=300_000, output_tokens=1000),
        Usage(input_tokens=300_000, output_tokens=1000, cache_write_tokens=300_000),
        Usage(input_tokens=300_000, output_tokens=1000, cache_read_tokens=299_000),
    ):
        assert rates.cost(usage) <= worst


def test_features_are_declared_or_inferred():
    short = ChatRequest(messages=(Message("user", "hi"),))
    assert extract(short).complexity == "low" and extract(short).declared == frozenset()
    hard = ChatRequest(
        messages=(Message("user", "Prove step by step and analyze:\n```def f(): pass```" * 50),)
    )
    assert extract(hard).complexity == "high"
    declared = extract(short, {"complexity": "high", "accuracy": "critical"})
    assert (declared.complexity, declared.accuracy) == ("high", "critical")
    assert declared.declared == {"complexity", "accuracy"}
    tools = ChatRequest(messages=short.messages, tools=({"type": "function"},), json=True)
    assert extract(tools).needs_tools and extract(tools).needs_json


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"complexty": "high"}, "unknown condition 'complexty'"),
        ({"complexity": "extreme"}, "complexity: 'extreme' is not one of"),
    ],
)
def test_bad_conditions_are_refused_at_compile_time(raw, message):
    with pytest.raises(ConfigError, match=message):
        compile_conditions(raw)


def test_an_empty_condition_map_always_matches():
    assert compile_conditions([{}, {"complexity": "high"}]) == ()


ROUTED = VALID.replace(
    "  config:\n",
    """  llmRouting:
    strategy: cost-optimized
    fallbacks:
      - provider: openai
        model: gpt-4
        conditions:
          - complexity: high
          - accuracy: critical
      - provider: anthropic
        model: claude-3-haiku
        conditions:
          - complexity: low
          - cost: priority
      - provider: local
        model: llama-3-8b
        conditions: {data_sensitivity: high}
  budget:
    perExecution: 0.5
    perDay: 10
  config:
""",
).replace(
    "        model: gpt-4\n        temperature: 0.1\n",
    "        model: gpt-4\n        temperature: 0.1\n        features: {data_sensitivity: high}\n",
)


def manifest() -> dict[str, Any]:
    report = load_sources([SourceFile(path="w.yaml", data=ROUTED.encode())])
    assert report.valid, [d.format() for d in report.diagnostics]
    workflow = report.manifests[0].workflow
    assert workflow is not None
    return canonical_dict(workflow)


def test_a_policy_compiles_from_the_canonical_manifest():
    policy = policy_for_agent(manifest(), "classify")
    assert policy.strategy == "cost-optimized"
    assert [r.label for r in policy.routes] == [
        "openai/gpt-4",
        "openai/gpt-4",
        "anthropic/claude-3-haiku",
        "local/llama-3-8b",
    ]
    assert policy.routes[0].origin == "agent llm" and policy.declared == {
        "data_sensitivity": "high"
    }
    assert policy.routes[3].conditions == ((("data_sensitivity", "high"),),)
    with pytest.raises(ConfigError, match="no agent named 'nope'"):
        policy_for_agent(manifest(), "nope")


def test_budget_limits_of_an_execution():
    limits = budget_limits(manifest(), name="support", execution="e1", today=date(2026, 11, 24))
    assert [(b.scope, b.limit) for b in limits] == [
        ("execution:e1", Decimal("0.5")),
        ("workflow:support:day:2026-11-24", Decimal("10")),
    ]


def test_router_config_and_unconfigured_deployments(tmp_path):
    key = tmp_path / "anthropic.key"
    key.write_text("sk-ant-secret\n", encoding="utf-8")
    config = load_config(
        {
            "providers": {
                "anthropic": {"apiKeyFile": str(key)},
                "gpu": {"kind": "local", "baseUrl": "http://127.0.0.1:9/v1", "trusted": True},
            },
            "mockWhenUnconfigured": True,
        }
    )
    router, missing = build_router(config, env={})
    assert missing == {"openai": "no API key (OPENAI_API_KEY)", "local": "no baseUrl"}
    assert router.providers["openai"].kind == "mock"  # answered by the mock, labelled so
    assert router.providers["anthropic"].kind == "anthropic"
    assert router.deployments["gpu"].keeps_data_local
    assert "sk-ant-secret" not in repr(config) + repr(router.providers)
    with pytest.raises(ConfigError, match=r"router.providers.x.kind"):
        load_config({"providers": {"x": {"kind": "azure"}}})
    with pytest.raises(ConfigError, match=r"router.retries: unknown setting"):
        load_config({"retries": 3})
    with pytest.raises(ConfigError, match="DEPLOYMENT/MODEL"):
        load_config({"prices": {"gpt-4": {"input": 1, "output": 2}}})
