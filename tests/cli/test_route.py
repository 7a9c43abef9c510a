"""`agentflow route explain`, and agents' LLM calls going through the router."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentflowd.cli import app
from agentflowd.llm import llm_callback, parse_request
from router import CallContext, MemoryLedger, Route, RoutingPolicy
from router.providers.mock import MockProvider
from router.router import Router
from sandbox import HostCallError
from tests.router.test_pricing_policy import ROUTED

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "w.yaml"
    text = ROUTED.replace("features: {data_sensitivity: high}", "features: {cost: normal}")
    path.write_text(text, "utf-8")
    return path


NO_KEYS = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "CREDENTIALS_DIRECTORY": ""}


def test_explain_shows_the_chain_and_why(workflow, tmp_path):
    config = tmp_path / "agentflowd.yaml"
    config.write_text(
        "router:\n  providers:\n    local: {baseUrl: 'http://127.0.0.1:9/v1'}\n"
        "  prices:\n    local/llama-3-8b: {input: 0, output: 0}\n",
        "utf-8",
    )
    env = {**NO_KEYS, "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    code, out, err = cli(
        "route",
        "explain",
        "-f",
        str(workflow),
        "--agent",
        "classify",
        "--prompt",
        "Where is my parcel?",
        "--config",
        str(config),
        env=env,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Strategy:  cost-optimized"
    assert "complexity=low" in lines[1]
    assert lines[2] == "Chosen:    anthropic/claude-3-haiku"
    assert (
        lines[4].startswith("  1. anthropic/claude-3-haiku")
        and "matched complexity=low" in lines[4]
    )
    assert "sk-test" not in out and "sk-ant" not in out
    code, out, _ = cli(
        "route",
        "explain",
        "-f",
        str(workflow),
        "--agent",
        "classify",
        "--feature",
        "data_sensitivity=high",
        "--config",
        str(config),
        "-o",
        "json",
        env=env,
    )
    data = json.loads(out)
    assert data["chosen"] == "local/llama-3-8b" and [c["route"] for c in data["chain"]] == [
        "local/llama-3-8b"
    ]
    reasons = {d["route"]: d["reason"] for d in data["dropped"]}
    assert reasons["openai/gpt-4"] == "data_sensitivity high: only local or trusted deployments"


def test_explain_says_which_providers_are_not_configured(workflow):
    code, out, _ = cli("route", "explain", "-f", str(workflow), "--agent", "classify", env=NO_KEYS)
    assert code == 0
    assert "Chosen:    -- none: the call would be refused" in out
    dropped = [line.split(None, 1) for line in out.splitlines() if line.startswith("  openai/")]
    assert ["openai/gpt-4", "not configured: no API key (OPENAI_API_KEY)"] in dropped
    assert "Note: deployment 'local' is not configured: no baseUrl" in out


def test_explain_errors(workflow, tmp_path):
    code, _, err = cli("route", "explain", "-f", str(workflow), "--agent", "nope")
    assert code == 2 and "no agent named 'nope'" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTED.replace("complexity: high", "complexity: extreme"), "utf-8")
    code, _, err = cli("route", "explain", "-f", str(bad), "--agent", "classify")
    assert code == 1 and "llmRouting.fallbacks[0].conditions" in err


def router_with_mock() -> tuple[Router, MemoryLedger]:
    ledger = MemoryLedger()
    return Router({"mock": MockProvider()}, ledger=ledger), ledger


def test_an_agent_request_is_routed_and_answered_with_cost_and_labels():
    router, ledger = router_with_mock()
    policy = RoutingPolicy(strategy="priority", routes=(Route("mock", "mock", (), "agent llm"),))
    complete = llm_callback(router, policy, lambda: CallContext(workflow="w", agent="a"))
    answer = json.loads(
        complete(json.dumps({"prompt": "hi", "temperature": 0, "system": "be brief"}))
    )
    assert answer["text"].startswith("[mock ") and answer["mock"] is True
    assert answer["route"] == "mock/mock" and answer["cost_usd"] == "0"
    assert ledger.records[-1].workflow == "w" and ledger.records[-1].agent == "a"


@pytest.mark.parametrize(
    ("request_json", "message"),
    [
        ("not json", "llm request is not JSON"),
        ("[1]", "must be a JSON object"),
        ('{"prompt": "x", "temprature": 1}', "unknown llm option(s): temprature"),
        ("{}", "needs a prompt or messages"),
        ('{"prompt": "x", "max_tokens": -1}', "max_tokens must be a positive integer"),
        ('{"messages": [{"role": "user"}]}', "'role' and 'content' strings"),
        ('{"prompt": "x", "features": {"secret": 1}}', "unknown feature 'secret'"),
        (
            '{"prompt": "x", "features": {"data_sensitivity": "HIGH"}}',
            "feature data_sensitivity: 'HIGH' is not one of",
        ),
    ],
)
def test_bad_agent_requests_are_error_values(request_json, message):
    with pytest.raises(HostCallError, match=re.escape(message)):
        parse_request(request_json)


def test_a_refused_call_is_an_error_value_for_the_agent():
    router, _ = router_with_mock()
    policy = RoutingPolicy(strategy="priority", routes=(Route("openai", "gpt-4o", (), "a"),))
    complete = llm_callback(router, policy, CallContext)
    with pytest.raises(HostCallError, match="no route can take this request"):
        complete('{"prompt": "x"}')


def test_the_store_ledger_keeps_every_attempt_and_seeds_budgets():
    from datetime import UTC, datetime
    from decimal import Decimal

    from agentflowd.llm import StoreLedger, budget_seed
    from agentflowd.store import MemoryStore
    from router import BudgetLimit, Budgets, ChatRequest, Message, PriceBook
    from router.pricing import Rate, Rates
    from tests.router.scripted import Scripted

    store = MemoryStore()
    now = datetime.now(UTC)
    paid = Rates(input=Rate(Decimal(1)), output=Rate(Decimal(2)), source="override")
    router = Router(
        {"local": Scripted("local", "local")},
        prices=PriceBook(overrides={("local", "m"): paid}),
        ledger=StoreLedger(store),
    )
    policy = RoutingPolicy(strategy="priority", routes=(Route("local", "m", (), "a"),))
    ctx = CallContext(workflow="w", agent="a", execution="e1")
    ask = ChatRequest(messages=(Message("user", "hi"),), max_tokens=10)
    router.complete(policy, ask, ctx)
    router.complete(policy, ask, ctx)
    totals = store.llm_costs(by="agent", workflow="w")
    assert totals == {"a": (Decimal("0.00004"), 2)}  # 10 in at $1/M + 5 out at $2/M, twice
    # after a restart, the day's budget starts from what the ledger says was spent
    budgets = Budgets(seed=budget_seed(store))
    day = BudgetLimit(f"workflow:w:day:{now.date().isoformat()}", Decimal("0.0001"))
    month = BudgetLimit(f"workflow:w:month:{now.strftime('%Y-%m')}", Decimal("1"))
    assert budgets.room([day]) == Decimal("0.00006")
    assert budgets.room([month]) == Decimal("0.99996")
    assert budgets.room([BudgetLimit("execution:e1", Decimal(1))]) == Decimal("0.99996")
    assert budgets.room([BudgetLimit("execution:other", Decimal(1))]) == Decimal(1)
