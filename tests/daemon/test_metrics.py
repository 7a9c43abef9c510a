"""/metrics: names and help pass `promtool check metrics`; no unbounded labels."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentflowd.observability import Metrics


def sample() -> bytes:
    metrics = Metrics()
    metrics.reconcile_total.labels("success").inc()
    metrics.reconcile_duration.observe(0.02)
    metrics.fetch_duration.observe(0.001)
    metrics.push_to_reconciled.observe(0.05)
    metrics.workflows.labels("active").set(4)
    metrics.status_writes.labels("git-notes", "ok").inc()
    metrics.last_sync.set(1.7e9)
    metrics.executions_started.labels("webhook").inc()
    metrics.executions_total.labels("webhook", "succeeded").inc()
    metrics.execution_duration.labels("succeeded").observe(0.4)
    metrics.queue_wait.observe(0.01)
    metrics.executions_active.labels("running").set(2)
    metrics.steps_total.labels("succeeded").inc()
    metrics.step_duration.observe(0.003)
    metrics.workers_busy.set(1)
    metrics.llm_tokens.labels("openai", "gpt-4o", "input").inc(120)
    metrics.llm_cost.labels("openai", "gpt-4o").inc(0.0012)
    return metrics.render()


def test_promtool_accepts_the_exposition():
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (.ci/run installs Debian's prometheus)")
        pytest.skip("promtool not installed (Debian package prometheus); CI runs this")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=sample(), capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b"", done.stderr.decode()


def test_names_units_and_labels():
    families = {f.name: f for f in text_string_to_metric_families(sample().decode())}
    assert set(families) >= {
        "agentflow_build_info",
        "agentflow_reconcile",
        "agentflow_reconcile_duration_seconds",
        "agentflow_source_fetch_duration_seconds",
        "agentflow_push_to_reconciled_seconds",
        "agentflow_workflows",
        "agentflow_status_writes",
        "agentflow_executions",
        "agentflow_executions_in_progress",
        "agentflow_executions_started",
        "agentflow_execution_duration_seconds",
        "agentflow_execution_queue_wait_seconds",
        "agentflow_steps",
        "agentflow_step_duration_seconds",
        "agentflow_workers_busy",
        "agentflow_llm_tokens",
        "agentflow_llm_cost_usd",
    }
    for family in families.values():
        assert family.name.startswith("agentflow_")
        for s in family.samples:
            allowed = {"result", "phase", "backend", "version", "le", "trigger", "state"}
            allowed |= {"provider", "model", "direction"}  # bounded by the router's config
            assert set(s.labels) <= allowed, s
    assert "_created" not in sample().decode()
