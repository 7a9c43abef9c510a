"""`make run`'s demo repository: the example workflows with every agent image they use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentflowd.manifest import load_sources
from agentflowd.source import read_commit
from tests.conftest import git

ROOT = Path(__file__).resolve().parents[2]


def make_demo(repo: Path) -> str:
    done = subprocess.run(
        [sys.executable, ROOT / "scripts/demo_repo.py", repo, ROOT / "examples/workflows", "x"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def valid_at_head(repo: Path) -> list[str]:
    snapshot = read_commit(repo, "HEAD")
    report = load_sources(snapshot.files, images=snapshot.images)
    assert report.valid, [d.format() for d in report.diagnostics]
    return sorted(i.ref for m in report.manifests for i in m.images)


def test_demo_repository_holds_the_workflows_and_their_agents(tmp_path):
    repo = tmp_path / "demo"
    assert "created the demo repository" in make_demo(repo)
    assert len(valid_at_head(repo)) == 12  # planner is shared by two workflows
    assert "created" not in make_demo(repo)  # the second run changes nothing
    assert git(repo, "rev-list", "--count", "HEAD") == "1"


def test_an_older_demo_repository_gets_the_agents(tmp_path):
    repo = tmp_path / "demo"
    make_demo(repo)
    git(repo, "rm", "-r", "-q", "agents")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "old layout")
    assert "added the example agents" in make_demo(repo)
    assert git(repo, "rev-list", "--count", "HEAD") == "3"
    valid_at_head(repo)
