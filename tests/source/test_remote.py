"""Remote sources: fetched into a mirror (file://, and http:// through a real git http-backend
with token auth), then read from the mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflowd.errors import SourceError
from agentflowd.source.git import GitCredentials, GitSource, is_remote
from tests.conftest import git, write_agents
from tests.gitserver import serve_git
from tests.manifests import named


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository ``served/wf.git`` and a working clone that pushes to it."""
    served = tmp_path / "served"
    served.mkdir()
    git(served, "init", "-q", "--bare", "-b", "main", "wf.git")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(served / "wf.git"), "work")
    write_agents(work)
    (work / "a.yaml").write_text(named("a"), encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "a")
    git(work, "push", "-q", "origin", "HEAD:main")
    return served, work


def push(work: Path, name: str) -> str:
    (work / f"{name}.yaml").write_text(named(name), encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", name)
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("url", "remote"),
    [
        ("/srv/repo", False),
        ("file:///srv/repo", True),
        ("https://h/r.git", True),
        ("git@github.com:o/r.git", True),
        ("ssh://git@h/r", True),
    ],
)
def test_is_remote(url, remote):
    assert is_remote(url) is remote


def test_file_url_is_mirrored_and_fetched(upstream, tmp_path):
    served, work = upstream
    source = GitSource(f"file://{served / 'wf.git'}", state_dir=tmp_path / "state")
    first = source.fetch()
    assert source.repo_path.parent == tmp_path / "state" / "mirrors"
    assert [f.path for f in source.snapshot(first).files] == ["a.yaml"]
    second = push(work, "b")
    assert source.tip() == first  # nothing moves without a fetch
    assert source.fetch() == second
    assert [f.path for f in source.snapshot(second).files] == ["a.yaml", "b.yaml"]


def test_http_with_a_token(upstream, tmp_path):
    served, work = upstream
    with serve_git(served, token="t0ken") as base:
        source = GitSource(
            f"{base}/wf.git",
            state_dir=tmp_path / "state",
            credentials=GitCredentials(token="t0ken"),
        )
        first = source.fetch()
        second = push(work, "b")
        assert source.fetch() == second != first
        assert source.remote_tip() == second


def test_http_token_from_a_file(upstream, tmp_path):
    served, _ = upstream
    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n", encoding="utf-8")
    with serve_git(served, token="t0ken") as base:
        source = GitSource(
            f"{base}/wf.git",
            state_dir=tmp_path / "s",
            credentials=GitCredentials(token_file=token_file),
        )
        assert len(source.fetch()) == 40


@pytest.mark.parametrize("token", [None, "wrong"])
def test_bad_or_missing_token_is_a_clear_error_without_the_secret(upstream, tmp_path, token):
    served, _ = upstream
    with serve_git(served, token="t0ken") as base:
        source = GitSource(
            f"{base}/wf.git", state_dir=tmp_path / "s", credentials=GitCredentials(token=token)
        )
        with pytest.raises(SourceError) as info:
            source.fetch()
    message = str(info.value)
    expected = "failed" if token else "asks for credentials and none are configured"
    assert message.startswith(f"{base}/wf.git") or message.startswith("authentication to")
    assert expected in message
    assert "t0ken" not in message and "wrong" not in message


def test_credentials_in_the_url_are_never_shown(tmp_path):
    source = GitSource("https://user:hunter2@127.0.0.1:9/r.git", state_dir=tmp_path)
    assert source.display_url == "https://***@127.0.0.1:9/r.git"


def test_reconciling_a_remote_polls_its_tip_before_fetching(upstream, tmp_path):
    from datetime import UTC, datetime

    from agentflowd.reconcile import Reconciler
    from agentflowd.store import MemoryStore

    served, work = upstream
    with serve_git(served) as base:
        source = GitSource(f"{base}/wf.git", state_dir=tmp_path / "s")
        fetches: list[str] = []
        original = source.fetch

        def counted() -> str:
            fetches.append("fetch")
            return original()

        source.fetch = counted  # type: ignore[method-assign]
        reconciler = Reconciler(source=source, store=MemoryStore(), clock=lambda: datetime.now(UTC))
        assert reconciler.sync().state is not None
        assert reconciler.sync().noop and len(fetches) == 1  # unchanged: ls-remote only
        push(work, "b")
        outcome = reconciler.sync()
        assert len(fetches) == 2 and outcome.plan.counts() == {"create": 1, "unchanged": 1}


def test_pull_refs_of_a_remote_are_fetched_validated_and_notes_pushed(upstream, tmp_path):
    from datetime import UTC, datetime

    from agentflowd.reconcile import GitNotesSink, Reconciler
    from agentflowd.store import MemoryStore

    served, work = upstream
    main_before = git(served / "wf.git", "rev-parse", "main")
    # another tool already noted something on the remote: it must survive our pushes
    git(
        served / "wf.git",
        "notes",
        "--ref=agentflow",
        "add",
        "-m",
        "other tool was here",
        main_before,
    )
    (work / "c.yaml").write_text(named("c"), encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "pr")
    pr = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "HEAD:refs/pull/7/head")
    with serve_git(served) as base:
        source = GitSource(f"{base}/wf.git", state_dir=tmp_path / "s")
        reconciler = Reconciler(
            source=source,
            store=MemoryStore(),
            sinks=[GitNotesSink(source.repo_path)],
            clock=lambda: datetime.now(UTC),
            push_notes=True,
        )
        main = reconciler.sync().sha
        (outcome,) = reconciler.validate_refs(["refs/pull/*/head"])
        assert (outcome.sha, outcome.state.value) == (pr, "success")
    # the statuses reached the served repository itself
    assert '"context":"agentflow/validate"' in git(
        served / "wf.git", "notes", "--ref=agentflow", "show", pr
    )
    assert '"context":"agentflow/sync"' in git(
        served / "wf.git", "notes", "--ref=agentflow", "show", main
    )


def test_ssh_with_a_key_and_strict_host_keys(upstream, tmp_path):
    from tests.sshserver import ssh_server

    served, work = upstream
    with ssh_server(tmp_path / "ssh") as ssh:
        url = f"ssh://{ssh.user}@127.0.0.1:{ssh.port}{served / 'wf.git'}"
        creds = GitCredentials(ssh_key=ssh.client_key, known_hosts=ssh.known_hosts)
        source = GitSource(url, state_dir=tmp_path / "state", credentials=creds)
        assert source.ssh
        first = source.fetch()
        second = push(work, "b")
        assert source.remote_tip() == second != first
        assert source.fetch() == second
        assert [f.path for f in source.snapshot(second).files] == ["a.yaml", "b.yaml"]

        # a host that is not in known_hosts is refused, not trusted on first use
        stranger = tmp_path / "empty_known_hosts"
        stranger.write_text("", encoding="utf-8")
        other = GitSource(
            url,
            state_dir=tmp_path / "state2",
            credentials=GitCredentials(ssh_key=ssh.client_key, known_hosts=stranger),
        )
        with pytest.raises(SourceError, match="cannot clone"):
            other.fetch()
        assert not other.repo_path.exists()
