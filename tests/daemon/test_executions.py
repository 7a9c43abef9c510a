"""The examples run end to end in the real daemon: the customer-support pipeline started from
the CLI, its Python agents in the sandbox, the mock provider answering, events followed live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentflowd.client import AgentFlowClient
from tests.conftest import free_port
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path, agentflow_cache: Path) -> Iterator[str]:
    repo = tmp_path / "repo"
    subprocess.run(
        [sys.executable, ROOT / "scripts/demo_repo.py", repo, ROOT / "examples/workflows", "x"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "AGENTFLOW_CACHE_DIR": str(agentflow_cache), "OPENAI_API_KEY": ""}
    env["ANTHROPIC_API_KEY"] = ""
    proc = subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(repo),
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            url.removeprefix("http://"),
            "--llm-mock",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def applied() -> bool:
            try:
                return len(httpx.get(f"{url}/api/v1/workflows", timeout=2).json()) == 4
            except httpx.HTTPError:
                return False

        wait_for(applied, timeout=60, what="the examples to be applied")
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]  # a clean stop (only when the test got this far)


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
        costs = httpx.get(f"{daemon}/api/v1/costs?by=kind").json()
        assert costs["totals"]["mock"]["calls"] == 3
        described = subprocess.run(
            [BIN / "agentflow", "describe", "execution", execution["id"], "-s", daemon],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "State:       succeeded" in described and "ticket-classifier" in described


def test_unknown_workflows_and_executions(daemon):
    with AgentFlowClient(daemon) as client:
        response = httpx.post(f"{daemon}/api/v1/workflows/nope/executions", json={})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert httpx.get(f"{daemon}/api/v1/executions/nope").status_code == 404
        assert client.list_executions() == []
