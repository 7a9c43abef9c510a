"""The examples run end to end in the real daemon: the customer-support pipeline started from
the CLI, its Python agents in the sandbox, the mock provider answering, events followed live."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentflowd.client import AgentFlowClient
from tests.conftest import ADMIN
from tests.daemon.examples import demo_repo, serving
from tests.waiting import wait_for

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path, agentflow_cache: Path) -> Iterator[str]:
    with serving(demo_repo(tmp_path / "repo"), tmp_path / "state", agentflow_cache) as url:
        yield url


def test_the_customer_support_pipeline_runs_from_the_cli(daemon):
    ticket = json.dumps({"ticket": "My order #123 never arrived"})
    done = subprocess.run(
        [
            BIN / "agentflow",
            "run",
            "customer-support-pipeline",
            "-i",
            ticket,
            "--wait",
            "-s",
            daemon,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert set(output) == {"quality-checker"}
    assert "step.succeeded ticket-classifier" in done.stderr
    assert done.stderr.strip().endswith("succeeded")

    with AgentFlowClient(daemon) as client:
        [execution] = client.list_executions(workflow="customer-support-pipeline")
        detail = client.get_execution(execution["id"])
        assert [s["state"] for s in detail["steps"]] == ["succeeded"] * 3
        assert all(len(s["image_sha256"]) == 64 for s in detail["steps"])
        assert detail["cost"]["total_usd"] == "0"  # the mock provider is free
        kinds = [e["type"] for e in client.events(execution["id"])]
        assert kinds[0] == "execution.running" and kinds[-1] == "execution.succeeded"
        assert "step.host_call" in kinds  # the LLM calls are in the history
        costs = httpx.get(f"{daemon}/api/v1/costs?by=kind", headers=ADMIN).json()
        assert costs["totals"]["mock"]["calls"] == 3
        metrics = httpx.get(f"{daemon}/metrics").text
        assert 'agentflow_executions_total{result="succeeded",trigger="manual"} 1.0' in metrics
        assert 'agentflow_steps_total{result="succeeded"} 3.0' in metrics
        assert 'agentflow_llm_tokens_total{direction="input",model="gpt-4",provider="openai"}' in (
            metrics
        )
        described = subprocess.run(
            [BIN / "agentflow", "describe", "execution", execution["id"], "-s", daemon],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "State:       succeeded" in described and "ticket-classifier" in described


def test_unknown_workflows_and_executions(daemon):
    with AgentFlowClient(daemon) as client:
        response = httpx.post(f"{daemon}/api/v1/workflows/nope/executions", json={}, headers=ADMIN)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert httpx.get(f"{daemon}/api/v1/executions/nope", headers=ADMIN).status_code == 404
        assert client.list_executions() == []


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the content-generation example's webhook names the credential content-webhook-secret
    monkeypatch.setenv("AGENTFLOW_SECRET_CONTENT_WEBHOOK_SECRET", "s3cret")


@pytest.mark.usefixtures("secret_env")
def test_webhook_triggers_check_signatures(daemon):
    import hmac
    import time

    body = json.dumps({"topic": "durable workflows"}).encode()
    url = f"{daemon}/hooks/content/requests"
    bad = httpx.post(url, content=body, headers={"X-AgentFlow-Signature-256": "sha256=00"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
    assert httpx.post(url, content=body).status_code == 401
    with AgentFlowClient(daemon) as client:
        assert client.list_executions(workflow="content-generation-pipeline") == []  # none started
    stamp = str(int(time.time()))
    signature = "sha256=" + hmac.new(b"s3cret", f"{stamp}.".encode() + body, "sha256").hexdigest()
    signed = {"X-AgentFlow-Timestamp": stamp, "X-AgentFlow-Signature-256": signature}
    unstamped = {"X-AgentFlow-Signature-256": signature}  # the timestamp is required
    assert httpx.post(url, content=body, headers=unstamped).status_code == 401
    good = httpx.post(url, content=body, headers=signed)
    assert good.status_code == 202, good.text
    execution = good.json()["execution"]
    again = httpx.post(url, content=body, headers={**signed, "X-AgentFlow-Delivery": "d-2"})
    assert again.status_code == 409  # a replay starts nothing new, whatever its delivery id
    assert again.json()["error"]["execution"] == execution
    # the customer-support webhook says unsigned: true: it accepts unsigned calls
    ticket = httpx.post(f"{daemon}/api/v1/tickets", json={"ticket": "Refund please"})
    assert ticket.status_code == 202
    with AgentFlowClient(daemon) as client:
        done = client.wait(execution)
        assert done["state"] == "succeeded" and done["trigger"] == "webhook"
        assert done["input"] == {"topic": "durable workflows"}
        assert client.wait(ticket.json()["execution"])["state"] == "succeeded"
    assert httpx.get(f"{daemon}/api/v1/tickets").status_code == 404  # POST only


def test_a_suspended_workflows_triggers_stop(daemon):
    with AgentFlowClient(daemon) as client:
        client.suspend("customer-support-pipeline")

        def gone() -> bool:
            return httpx.post(f"{daemon}/api/v1/tickets", json={}).status_code == 404

        wait_for(gone, what="the webhook to stop")
        client.resume("customer-support-pipeline")
        wait_for(lambda: not gone(), what="the webhook to come back")


def test_the_sdk_deploys_runs_and_follows_a_workflow(daemon):
    from agentflowd import Agent, AgentFlowClient, LLMConfig, Workflow
    from agentflowd.errors import ConflictError, UsageError

    workflow = Workflow(
        name="sdk-support",
        agents=[
            Agent(
                name="ticket-classifier",
                image="agents/classifier:v1.2",
                llm=LLMConfig(provider="openai", model="gpt-4"),
                resources={"memory": "512Mi", "cpu": "500m"},
            ),
            Agent(
                name="response-generator",
                image="agents/responder:v1.0",
                llm=LLMConfig(provider="anthropic", model="claude-3-sonnet"),
                depends_on=["ticket-classifier"],
            ),
        ],
    )
    with AgentFlowClient(daemon) as client:
        execution = client.deploy_workflow(workflow, input={"ticket": "Where is my parcel?"})
        seen = [(e.agent, e.status) for e in client.stream_execution_events(execution.id)]
        assert ("ticket-classifier", "succeeded") in seen and seen[-1] == (None, "succeeded")
        status = client.get_execution_status(execution.id)
        assert status.state == "succeeded" and set(status.output) == {"response-generator"}
        assert "classifying a ticket" in client.get_agent_logs(execution.id, "ticket-classifier")
        assert client.get_workflow("sdk-support")["origin"] == "api"
        # git's names are git's; unknown images are refused; API workflows can be deleted
        support = Workflow(name="customer-support-pipeline", agents=workflow.agents)
        with pytest.raises(ConflictError, match="managed by git"):
            client.deploy(support.to_manifest())
        bad = Workflow(name="bad", agents=[Agent(name="a", image="agents/none:v9")])
        with pytest.raises(UsageError, match="image 'agents/none:v9' is not in the store"):
            client.deploy(bad.to_manifest())
        typo = bad.to_manifest()
        typo["spec"]["agents"] = [{"name": "a", "image": "agents/qa:v0.8", "dependOn": ["b"]}]
        with pytest.raises(UsageError, match="did you mean 'dependsOn'"):
            client.deploy(typo)
        assert client.delete_workflow("sdk-support")["deleted"] is True
    listed = subprocess.run(
        [BIN / "agentflow", "status", "customer-support-pipeline", "-s", daemon],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.startswith("customer-support-pipeline: active")


def test_live_view_draws_the_dag_to_the_end(daemon):
    with AgentFlowClient(daemon) as client:
        started = client.run("data-analysis-pipeline", {"sources": []})
    done = subprocess.run(
        [BIN / "agentflow", "live-view", started["id"], "-s", daemon],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "data-collector" in done.stdout and "data-analyzer" in done.stdout
    assert "succeeded" in done.stdout
