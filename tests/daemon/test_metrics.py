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
    }
    for family in families.values():
        assert family.name.startswith("agentflow_")
        for s in family.samples:
            assert set(s.labels) <= {"result", "phase", "backend", "version", "le"}, s
    assert "_created" not in sample().decode()
