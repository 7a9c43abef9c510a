"""One contract for every status sink (git notes, GitHub, GitLab, Gitea fakes), then each
forge's faults and quirks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentflowd.errors import PermanentError, TransientError
from agentflowd.reconcile import CONTEXT_SYNC, CommitStatus, DedupSink, GitNotesSink
from agentflowd.reconcile.forges import Forge, ForgeSink
from agentflowd.store import RevisionState
from tests.conftest import git
from tests.fakeforge import ForgeState, fake_forge

SHA = "a" * 40
T = datetime(2026, 11, 24, tzinfo=UTC)


def status(state: RevisionState, description: str = "d", sha: str = SHA) -> CommitStatus:
    return CommitStatus(
        sha=sha,
        context=CONTEXT_SYNC,
        state=state,
        description=description,
        at=T,
        target_url="http://127.0.0.1:8080/api/v1/revisions/1",
    )


Reader = Callable[[str], list[str]]


@pytest.fixture(params=["git-notes", "github", "gitlab", "gitea"])
def sink(request, tmp_path: Path) -> Iterator[tuple[object, Reader, str]]:
    if request.param == "git-notes":
        repo = tmp_path / "r"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "x")
        sha = git(repo, "rev-parse", "HEAD")
        notes = GitNotesSink(repo)
        yield notes, lambda s: [str(n["state"]) for n in notes.read(s)], sha
        return
    with fake_forge(request.param) as (url, state):
        forge = ForgeSink(
            forge=Forge(request.param),
            base_url=url,
            repo="group/sub/repo",
            token="tok",
            sleep=lambda _s: None,
        )
        yield forge, lambda s: [r["state"] for r in state.of(s, CONTEXT_SYNC)], SHA


def test_pending_then_terminal(sink):
    target, read, sha = sink
    target.post(status(RevisionState.PENDING, sha=sha))
    target.post(status(RevisionState.FAILURE, "a.yaml:3: unknown field", sha=sha))
    states = read(sha)
    assert states[0] == "pending" and states[-1] in ("failure", "failed") and len(states) == 2


def test_dedup_skips_identical_posts(sink):
    target, read, sha = sink
    dedup = DedupSink(target)
    for _ in range(3):
        dedup.post(status(RevisionState.SUCCESS, sha=sha))
    dedup.post(status(RevisionState.FAILURE, "other", sha=sha))
    assert read(sha) in (["success", "failure"], ["success", "failed"])


@pytest.fixture
def gh() -> Iterator[tuple[ForgeSink, ForgeState, list[float]]]:
    with fake_forge("github") as (url, state):
        slept: list[float] = []
        yield (
            ForgeSink(
                forge=Forge.GITHUB, base_url=url, repo="o/r", token="tok", sleep=slept.append
            ),
            state,
            slept,
        )


def test_429_and_5xx_are_retried_with_backoff(gh):
    sink, state, slept = gh
    state.faults = [429, 503, 502]
    sink.post(status(RevisionState.SUCCESS))
    assert state.of(SHA, CONTEXT_SYNC)[0]["state"] == "success"
    assert state.requests == 4 and slept == [0.0, 1.0, 2.0]  # Retry-After: 0, then doubling


def test_retries_give_up_as_a_transient_error(gh):
    sink, state, _ = gh
    state.faults = [503] * 10
    with pytest.raises(TransientError, match="github answered 503 after 4 attempts"):
        sink.post(status(RevisionState.SUCCESS))


def test_a_bad_token_is_permanent_and_not_echoed():
    with fake_forge("github", token="right") as (url, _state):
        sink = ForgeSink(
            forge=Forge.GITHUB, base_url=url, repo="o/r", token="wrong-token", sleep=lambda _s: None
        )
        with pytest.raises(PermanentError) as info:
            sink.post(status(RevisionState.SUCCESS))
    assert "refused the token (401)" in str(info.value) and "wrong-token" not in str(info.value)


def test_github_stops_at_1000_statuses_per_context(gh):
    sink, state, _ = gh
    state.cap = 2
    sink.post(status(RevisionState.PENDING))
    sink.post(status(RevisionState.SUCCESS))
    with pytest.raises(PermanentError, match="at most 1,000 statuses"):
        sink.post(status(RevisionState.SUCCESS, "again"))


def test_gitlab_repeated_state_counts_as_posted():
    with fake_forge("gitlab") as (url, state):
        sink = ForgeSink(forge=Forge.GITLAB, base_url=url, repo="g/r", token="tok")
        sink.post(status(RevisionState.SUCCESS))
        sink.post(status(RevisionState.SUCCESS, "same state, new text"))  # 400 from GitLab: fine
        assert [r["state"] for r in state.of(SHA, CONTEXT_SYNC)] == ["success"]


def test_unreachable_forge_is_transient():
    sink = ForgeSink(
        forge=Forge.GITEA,
        base_url="http://127.0.0.1:9",
        repo="o/r",
        token="t",
        max_attempts=2,
        sleep=lambda _s: None,
    )
    with pytest.raises(TransientError, match="cannot reach gitea"):
        sink.post(status(RevisionState.PENDING))


def test_queued_sink_posts_in_order_off_the_caller_thread():
    import threading

    from agentflowd.reconcile import QueuedSink

    release = threading.Event()
    seen: list[tuple[str, str]] = []

    class Slow:
        name = "slow"

        def post(self, s: CommitStatus) -> None:
            release.wait()
            if s.description == "boom":
                raise RuntimeError("forge down")
            seen.append((s.state.value, threading.current_thread().name))

    queued = QueuedSink(Slow())
    try:
        queued.post(status(RevisionState.PENDING))
        queued.post(status(RevisionState.FAILURE, "boom"))
        queued.post(status(RevisionState.SUCCESS))
        assert seen == []  # post() returned without waiting for the forge
    finally:
        release.set()  # the forge answers only now, however slowly this thread ran
        queued.close()
    assert seen == [("pending", "agentflow-status-slow"), ("success", "agentflow-status-slow")]


def _notes_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    return repo, git(repo, "rev-parse", "HEAD")


def test_a_notes_lock_left_by_a_killed_writer_is_removed(tmp_path: Path, caplog):
    """A daemon killed with -9 mid-note leaves ``refs/notes/agentflow.lock``: once it has
    stood for ``lock_wait`` the next note removes it instead of failing (and every later note
    of every node with it)."""
    repo, sha = _notes_repo(tmp_path)
    lock = repo / ".git" / "refs" / "notes" / "agentflow.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    waits: list[float] = []
    notes = GitNotesSink(repo, lock_wait=0.5, sleep=waits.append)
    notes.post(status(RevisionState.SUCCESS, sha=sha))
    assert [n["state"] for n in notes.read(sha)] == ["success"]
    assert not lock.exists()
    assert sum(waits) >= 0.5  # it waited out a live writer's time first
    assert "its writer died mid-write" in caplog.text


def test_a_live_writers_notes_lock_is_waited_out(tmp_path: Path, caplog):
    repo, sha = _notes_repo(tmp_path)
    lock = repo / ".git" / "refs" / "notes" / "agentflow.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    notes = GitNotesSink(repo, lock_wait=60, sleep=lambda _s: lock.unlink())  # the writer ends
    notes.post(status(RevisionState.PENDING, sha=sha))
    assert [n["state"] for n in notes.read(sha)] == ["pending"]
    assert "died" not in caplog.text
