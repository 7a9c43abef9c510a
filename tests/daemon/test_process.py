"""The real daemon process: sd_notify through start, reload and stop; commits applied by watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, free_port, git, init_repo
from tests.daemon.examples import NotifySocket
from tests.manifests import named
from tests.waiting import wait_for

BIN = Path(sys.executable).parent


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    init_repo(path)
    (path / "a.yaml").write_text(named("a"), encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture
def daemon(
    tmp_path: Path, repo: Path
) -> Iterator[tuple[subprocess.Popen[str], NotifySocket, str, Path]]:
    notify = NotifySocket(tmp_path / "notify.sock")
    port = free_port()
    config = tmp_path / "agentflowd.yaml"
    config.write_text(
        f"repo: {repo}\nstate_dir: {tmp_path / 'state'}\nlisten: 127.0.0.1:{port}\n"
        "log_format: json\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "2000000",
        "AGENTFLOW_WARM_PYTHON": "false",
    }
    proc = subprocess.Popen(
        [BIN / "agentflowd", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, notify, f"http://127.0.0.1:{port}", config
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # reads and closes the pipes
        notify.sock.close()


def test_ready_status_watchdog_reload_and_stop(daemon, repo):
    proc, notify, url, config = daemon
    notify.expect("READY=1")
    # READY comes only after the first reconcile pass (tests/daemon/test_ready.py)
    assert httpx.get(f"{url}/readyz").json() == {"ready": True, "reasons": [], "role": "leader"}
    notify.expect("WATCHDOG=1", timeout=10)
    statuses = wait_for(
        lambda: (
            [m for m in notify.messages if m.startswith("STATUS=revision")]
            or notify.expect("WATCHDOG=1")
            and False
        ),
        what="a STATUS line",
    )
    assert "1 workflows, 0 failing" in statuses[0]

    # a commit is picked up by the watch, without anyone calling anything
    (repo / "b.yaml").write_text(named("b"), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second")
    sha = git(repo, "rev-parse", "HEAD")
    names = wait_for(
        lambda: (
            {w["name"] for w in httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()}
            >= {"a", "b"}
        ),
        what="workflow b applied",
    )
    assert names
    notes = wait_for(
        lambda: (
            git(repo, "notes", "--ref=agentflow", "show", sha)
            if _has_note(repo, sha, "success")
            else ""
        ),
        what="the success note",
    )
    assert json.loads(notes.splitlines()[-1])["state"] == "success"

    # SIGHUP with a broken config: RELOADING, then READY again with the old config
    config.write_text(config.read_text() + "no_such_key: 1\n", encoding="utf-8")
    before = len(notify.messages)
    proc.send_signal(signal.SIGHUP)
    notify.messages = notify.messages[:before]
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    assert httpx.get(f"{url}/healthz").status_code == 200

    # a config whose secret file is missing: refused as a whole, READY again
    config.write_text(
        config.read_text().replace("no_such_key: 1\n", "webhook_secret_file: /nonexistent\n"),
        encoding="utf-8",
    )
    before = len(notify.messages)
    proc.send_signal(signal.SIGHUP)
    notify.messages = notify.messages[:before]
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    assert httpx.get(f"{url}/healthz").status_code == 200

    proc.send_signal(signal.SIGTERM)
    notify.expect("STOPPING=1")
    assert proc.wait(timeout=20) == 0
    _out, err = proc.communicate(timeout=10)
    assert "reload refused" in err and "no_such_key" in err
    assert "cannot read webhook_secret_file" in err


def _has_note(repo: Path, sha: str, state: str) -> bool:
    try:
        text = git(repo, "notes", "--ref=agentflow", "show", sha)
    except subprocess.CalledProcessError:
        return False
    return f'"state":"{state}"' in text


def test_bad_config_exits_2_with_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("repo: /nowhere\nlisten: nonsense\n", encoding="utf-8")
    done = subprocess.run(
        [BIN / "agentflowd", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(f"agentflowd: {config}: listen:")


def test_not_a_repository_exits_with_a_clear_error(tmp_path):
    done = subprocess.run(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "s"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"agentflowd: {tmp_path} is not a git repository" in done.stderr


def test_forge_statuses_pull_request_validation_and_push_webhook(tmp_path, repo):
    import hashlib
    import hmac

    from tests.fakeforge import fake_forge

    secret = tmp_path / "webhook-secret"
    secret.write_text("hook-secret\n", encoding="utf-8")
    token = tmp_path / "gh-token"
    token.write_text("tok\n", encoding="utf-8")
    port = free_port()
    with fake_forge("github") as (forge_url, forge):
        config = tmp_path / "agentflowd.yaml"
        config.write_text(
            f"repo: {repo}\nstate_dir: {tmp_path / 'state'}\nlisten: 127.0.0.1:{port}\n"
            f"webhook_secret_file: {secret}\nvalidate_refs: ['refs/heads/*']\n"
            f"statuses:\n  - forge: github\n    url: {forge_url}\n    repo: o/r\n"
            f"    token_file: {token}\n",
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [BIN / "agentflowd", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            main_sha = git(repo, "rev-parse", "HEAD")
            wait_for(
                lambda: (
                    [s["state"] for s in forge.of(main_sha, "agentflow/sync")]
                    == ["pending", "success"]
                ),
                what="sync statuses on the forge",
                timeout=30,
            )
            git(repo, "checkout", "-q", "-b", "feature")
            (repo / "b.yaml").write_text(
                named("b").replace("cpu: 200m", "cpu: lots"), encoding="utf-8"
            )
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "pr")
            pr_sha = git(repo, "rev-parse", "HEAD")
            body = json.dumps({"ref": "refs/heads/feature", "after": pr_sha}).encode()
            sig = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/git/webhook",
                content=body,
                headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sig},
            )
            assert answer.status_code == 202
            wait_for(
                lambda: (
                    [s["state"] for s in forge.of(pr_sha, "agentflow/validate")]
                    == ["pending", "failure"]
                ),
                what="validate statuses on the forge",
                timeout=30,
            )
            failure = forge.of(pr_sha, "agentflow/validate")[-1]
            assert failure["description"].startswith("b.yaml:17: 'lots' is not a CPU quantity")
            assert failure["target_url"].startswith(f"http://127.0.0.1:{port}/api/v1/revisions/")
            # nothing from the branch was applied
            names = {
                w["name"]
                for w in httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/workflows", headers=ADMIN
                ).json()
            }
            assert names == {"a"}

            # (counted after the forge answered, on the sink's thread: wait for it)
            def writes() -> list[str]:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                return [line for line in text.splitlines() if "status_writes_total{" in line]

            try:
                wait_for(
                    lambda: (
                        'agentflow_status_writes_total{backend="github",result="ok"} 4.0'
                        in writes()
                    ),
                    timeout=60,
                    what="the status writes to be counted",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {writes()}") from exc
        finally:
            proc.terminate()
            proc.communicate(timeout=20)


def test_kill_9_at_any_moment_converges_on_restart(tmp_path):
    """SIGKILL the daemon while it applies 200 workflows, three times; the next start converges."""
    repo = tmp_path / "big"
    repo.mkdir()
    init_repo(repo)
    for i in range(200):
        (repo / f"w{i:03d}.yaml").write_text(named(f"w{i:03d}"), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "many")
    state = tmp_path / "state"

    def start(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                BIN / "agentflowd",
                "serve",
                "--repo",
                str(repo),
                "--state-dir",
                str(state),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def count(url: str) -> int:
        try:
            return len(httpx.get(f"{url}/api/v1/workflows", headers=ADMIN, timeout=5).json())
        except httpx.HTTPError:
            return -1

    seen: list[int] = []
    applied = 0
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(port)
        # kill once it made progress, in the middle of applying if we catch it there
        target = applied

        def progressed(u: str = url, t: int = target) -> int:
            n = count(u)
            return n if n > t else 0

        seen.append(wait_for(progressed, what="progress", timeout=30))
        proc.kill()
        proc.wait(timeout=10)
        applied = seen[-1]
        if applied >= 200:
            break
    assert any(0 < n < 200 for n in seen), f"never caught it mid-apply: {seen}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(port)
    try:
        wait_for(lambda: count(url) == 200, what="all 200 workflows", timeout=60)
        revisions = httpx.get(f"{url}/api/v1/revisions", headers=ADMIN).json()
        wait_for(
            lambda: (
                httpx.get(f"{url}/api/v1/revisions", headers=ADMIN).json()[0]["state"] == "success"
            ),
            what="success",
        )
        revisions = httpx.get(f"{url}/api/v1/revisions", headers=ADMIN).json()
        assert all(r["state"] in ("success", "error") for r in revisions), revisions
        assert [
            w["generation"] for w in httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()
        ] == [1] * 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_linked_worktree_is_watched(tmp_path, repo):
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "live", str(worktree))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            BIN / "agentflowd",
            "serve",
            "--repo",
            str(worktree),
            "--branch",
            "live",
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{port}",
            "--poll-interval",
            "1h",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _names(url) == {"a"}, what="first pass", timeout=30)
        (worktree / "b.yaml").write_text(named("b"), encoding="utf-8")
        git(worktree, "add", "-A")
        git(worktree, "commit", "-q", "-m", "b")
        wait_for(lambda: _names(url) == {"a", "b"}, what="the worktree commit", timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _names(url: str) -> set[str]:
    try:
        return {w["name"] for w in httpx.get(f"{url}/api/v1/workflows", headers=ADMIN).json()}
    except httpx.HTTPError:
        return set()
