"""The example agents of the customer-support pipeline run, chained, in the real sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox import HostCallbacks, RunContext, SandboxEngine, StepLimits
from sandbox.context import HostCallError
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


INPUTS = {
    "customer-support-pipeline": {"ticket": "My order #123 never arrived"},
    "data-analysis-pipeline": {"sources": ["https://api.github.com/repos/o/r", "https://x.test/"]},
    "content-generation-pipeline": {"topic": "durable workflows"},
    "research-assistant": {"question": "How do agents use tools?"},
}


def mock_llm(request: str) -> str:
    prompt = json.loads(request)["prompt"]
    return json.dumps({"text": f"first point\nsecond, point\n{prompt[:20]}", "model": "mock"})


def fake_http(request: str) -> str:
    url = json.loads(request)["url"]
    if "x.test" in url:
        raise HostCallError("x.test is not in network.allow")
    body = "<feed><title>query</title><title>Paper A</title></feed>"
    return json.dumps({"status": 200, "headers": {}, "body": body, "truncated": False})


def test_every_example_workflow_runs_with_its_own_images(agentflow_cache: Path):
    """Each example's agents, found by the image rule, run in DAG order on mock answers."""
    from agentflowd.manifest import SourceFile, load_sources, topological_order
    from agentflowd.source import DirectoryImages

    examples = AGENTS.parent
    files = sorted((examples / "workflows").glob("*.yaml"))
    report = load_sources(
        [SourceFile(path=str(f), data=f.read_bytes()) for f in files],
        images=DirectoryImages(examples),
    )
    assert report.valid and len(report.manifests) == 4
    engine = SandboxEngine(agentflow_cache / "compiled")
    runtime = PythonRuntime(engine)
    try:
        for manifest in report.manifests:
            workflow = manifest.workflow
            assert workflow is not None and manifest.name is not None
            images = {i.ref: i for i in manifest.images}
            outputs: dict[str, Any] = {}
            for name in topological_order(workflow):
                agent = next(a for a in workflow.spec.agents if a.name == name)
                source = (examples / images[agent.image].path).read_text(encoding="utf-8")
                payload = {
                    "input": INPUTS[manifest.name],
                    "steps": {d: outputs[d] for d in agent.depends_on},
                }
                callbacks = HostCallbacks(llm_complete=mock_llm, http_fetch=fake_http)
                ctx = RunContext(limits=StepLimits(), callbacks=callbacks)
                report_ = runtime.run(source, json.dumps(payload), ctx)
                assert report_.outcome.ok, (manifest.name, name, report_.outcome.detail)
                outputs[name] = json.loads(report_.outcome.output or "")
            assert len(outputs) == len(workflow.spec.agents)
    finally:
        engine.close()
