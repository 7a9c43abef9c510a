"""The `agentflow` commands that talk to a running agentflowd (a real daemon process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentflowd.cli import app
from tests.conftest import ADMIN, free_port, git, init_repo
from tests.manifests import named
from tests.waiting import wait_for

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("remote")
    repo = root / "repo"
    repo.mkdir()
    init_repo(repo)
    for name in ("a", "b"):
        (repo / f"{name}.yaml").write_text(named(name), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(repo),
            "--state-dir",
            str(root / "state"),
            "--listen",
            url.removeprefix("http://"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        wait_for(lambda: _applied(url), what="the daemon to apply the first commit", timeout=30)
        yield url, repo
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _applied(url: str) -> bool:
    try:
        return len(httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()) == 2
    except httpx.HTTPError:
        return False


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_and_describe(server):
    url, _ = server
    code, out, _ = cli("list", "workflows", "--server", url)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "PHASE", "AGENTS", "REVISION", "GEN", "PINNED", "ORIGIN"]
    assert [r.split()[:3] for r in rows] == [["a", "active", "3"], ["b", "active", "3"]]
    code, out, _ = cli("list", "workflows", "-o", "json", "--server", url)
    assert [w["name"] for w in json.loads(out)] == ["a", "b"]
    code, out, _ = cli("describe", "workflow", "a", "--server", url)
    assert code == 0 and "Schedule:    0 9 * * 1-5 (UTC), next " in out
    assert "Image:       agents/qa:v0.8 -> agents/qa/v0.8/agent.py sha256:" in out
    code, out, _ = cli("describe", "workflow", "a", "-o", "yaml", "--server", url)
    assert "spec_hash:" in out
    code, out, _ = cli("list", "revisions", "--server", url)
    assert "success" in out


def test_not_found_exits_3_and_unreachable_exits_1(server):
    url, _ = server
    code, _, err = cli("describe", "workflow", "nope", "--server", url)
    assert (code, err.strip()) == (3, "agentflow describe workflow: workflow 'nope' not found")
    code, _, err = cli("list", "workflows", "--server", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach agentflowd" in err


def test_operator_actions_and_diff(server):
    url, repo = server
    first = git(repo, "rev-parse", "HEAD")
    code, out, _ = cli("suspend", "a", "--server", url)
    assert code == 0 and out.splitlines()[1].split()[:2] == ["a", "suspended"]
    code, out, _ = cli("resume", "a", "-o", "json", "--server", url)
    assert json.loads(out)["suspended"] is False
    (repo / "a.yaml").write_text(named("a").replace("gpt-4", "gpt-4o"), encoding="utf-8")
    git(repo, "commit", "-qam", "bump")
    code, out, _ = cli("sync", "--server", url)
    assert code == 0
    wait_for(
        lambda: httpx.get(f"{url}/api/v1/workflows/a", headers=ADMIN).json()["generation"] == 2,
        what="gen 2",
    )
    code, out, _ = cli("rollback", "a", "--to", first, "-o", "json", "--server", url)
    assert json.loads(out)["pinned_revision"] == first
    git(repo, "checkout", "-q", "-b", "next")
    (repo / "c.yaml").write_text(named("c"), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c")
    git(repo, "checkout", "-q", "main")
    code, out, _ = cli("diff", "--ref", "next", "-o", "json", "--server", url)
    assert code == 0
    rows = {c["name"]: c["action"] for c in json.loads(out)["changes"]}
    assert rows == {"a": "skip-pinned", "b": "unchanged", "c": "create"}
    code, out, _ = cli("diff", "--ref", "next", "--server", url)
    assert out.startswith("commit ") and "skip-pinned" in out
    code, out, _ = cli("unpin", "a", "-o", "json", "--server", url)
    assert json.loads(out)["counts"]["update"] == 1


def test_keys_audit_and_sign_in_from_the_cli(server, tmp_path, monkeypatch):
    url, _ = server
    code, out, err = cli(
        "keys", "create", "ci-bot", "--role", "viewer", "--workflows", "team=cs", "-s", url
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("afk_") and "only time" in err
    code, out, _ = cli("keys", "list", "-o", "json", "-s", url)
    [made] = [k for k in json.loads(out) if k["name"] == "ci-bot"]
    assert made["role"] == "viewer" and made["workflows"] == "team=cs" and "token" not in made
    # sign in as that key (stored in a CLI config of its own), and see what it may do
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTFLOW_API_KEY")
    code, out, err = cli("auth", "login", "--key", token, "-s", url)
    assert code == 0 and "signed in as key:ci-bot (viewer, limited to team=cs)" in out, err
    assert token not in out
    code, out, _ = cli("auth", "whoami", "-s", url)
    assert "role: viewer" in out
    code, _, err = cli("suspend", "a", "-s", url)
    assert code == 1 and "needs deployer or above" in err
    code, _, err = cli("auth", "login", "--key", token[:-2] + "xx", "-s", url)
    assert code == 1 and "nothing stored" in err
    monkeypatch.setenv("AGENTFLOW_API_KEY", ADMIN["Authorization"].removeprefix("Bearer "))
    code, _, _ = cli("keys", "revoke", "ci-bot", "-s", url)
    assert code == 0
    code, out, _ = cli("audit", "--since", "1h", "--target", "ci-bot", "-o", "json", "-s", url)
    rows = json.loads(out)
    assert [(r["action"], r["result"]) for r in rows] == [
        ("key.revoke", "ok"),
        ("key.create", "ok"),
    ]
    code, out, _ = cli("settings", "-o", "json", "-s", url)
    assert code == 0 and json.loads(out)["lease"] == "10s"
    code, out, _ = cli("audit", "--actor", "key:ci-bot", "-o", "json", "-s", url)
    assert {(r["action"], r["status"]) for r in json.loads(out)} >= {
        ("auth.login", 200),
        ("workflow.suspend", 403),
    }
