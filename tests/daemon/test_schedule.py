"""A cron slot runs an example end to end in the real daemon, on the wall clock, and a slot never
runs twice across restarts.

The data-analysis example, scheduled every minute. After a restart the scheduler looks back over
the misfire grace (60 s), so the current minute's slot is due at once: the test needs no wait
for a minute boundary. Whether that slot already ran before the restart or not, the slot's
unique key leaves exactly one execution for it.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tests.daemon.examples import demo_repo, serving
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def scheduled(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(
        f"{url}/api/v1/executions",
        params={"workflow": "data-analysis-pipeline"},
        headers=ADMIN,
        timeout=5,
    ).json()
    return [e for e in found if e["trigger"] == "schedule"]


def test_a_cron_slot_runs_the_example_once_across_restarts(tmp_path: Path, agentflow_cache: Path):
    repo = demo_repo(tmp_path / "repo")
    manifest = repo / "data-analysis.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert 'cron: "30 6 * * *"' in text
    manifest.write_text(text.replace('cron: "30 6 * * *"', 'cron: "* * * * *"'), "utf-8")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "every minute"], check=True)
    state = tmp_path / "state"

    with serving(repo, state, agentflow_cache):
        pass  # applied; a slot may or may not have come meanwhile
    with serving(repo, state, agentflow_cache) as url:
        runs = wait_for(lambda: scheduled(url), timeout=30, what="a cron slot to fire")

        def finished() -> list[dict[str, Any]]:
            return [e for e in scheduled(url) if e["state"] == "succeeded"]

        done = wait_for(finished, timeout=240, what="the scheduled execution to finish")[0]
        steps = httpx.get(f"{url}/api/v1/executions/{done['id']}", headers=ADMIN, timeout=5).json()[
            "steps"
        ]
        assert {s["step"]: s["state"] for s in steps} == {
            "data-collector": "succeeded",
            "data-analyzer": "succeeded",
        }
        assert done["input"]["trigger"] == "schedule"
        slot = done["input"]["scheduled_at"]
        at = datetime.fromisoformat(slot)
        assert (at.second, at.microsecond) == (0, 0) and at.utcoffset() is not None
    with serving(repo, state, agentflow_cache) as url:  # the same slot is never run again
        runs = wait_for(lambda: scheduled(url), timeout=30, what="the executions")
        slots = Counter(e["input"]["scheduled_at"] for e in runs)
        assert slot in slots
        assert max(slots.values()) == 1, slots
