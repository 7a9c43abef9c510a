"""The example agents of the customer-support pipeline run, chained, in the real sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox import HostCallbacks, RunContext, SandboxEngine, StepLimits
from sandbox.python import PythonRuntime

pytestmark = pytest.mark.slow

AGENTS = Path(__file__).resolve().parents[2] / "examples" / "agents"


def llm(request: str) -> str:
    prompt = json.loads(request)["prompt"]
    if prompt.startswith("Classify"):
        return json.dumps({"text": "Shipping", "model": "mock"})
    if prompt.startswith("Write"):
        return json.dumps(
            {"text": "Sorry for the delay! Your parcel ships today.", "model": "mock"}
        )
    return json.dumps({"text": "yes", "model": "mock"})


def test_customer_support_agents_chain(agentflow_cache: Path):
    engine = SandboxEngine(agentflow_cache / "compiled")
    runtime = PythonRuntime(engine)

    def step(image: str, payload: dict[str, Any]) -> dict[str, Any]:
        source = (AGENTS / image / "agent.py").read_text(encoding="utf-8")
        ctx = RunContext(limits=StepLimits(), callbacks=HostCallbacks(llm_complete=llm))
        report = runtime.run(source, json.dumps(payload), ctx)
        assert report.outcome.ok, report.outcome.detail
        result: dict[str, Any] = json.loads(report.outcome.output or "")
        return result

    try:
        ticket = {"input": {"ticket": "My order #123 never arrived"}}
        classified = step("classifier/v1.2", ticket)
        assert classified["label"] == "shipping"
        drafted = step(
            "responder/v1.0", {"input": ticket["input"], "steps": {"ticket-classifier": classified}}
        )
        checked = step(
            "qa/v0.8", {"input": ticket["input"], "steps": {"response-generator": drafted}}
        )
        assert checked == {"approved": True, "problems": [], "reply": drafted["reply"]}
    finally:
        engine.close()
