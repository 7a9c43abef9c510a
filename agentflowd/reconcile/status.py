"""Commit statuses: telling git what happened to a revision.

Every result goes through one :class:`StatusSink` interface. The git-notes sink is always
available: it appends one JSON line per status to a note under ``refs/notes/agentflow`` on the
commit, in the repository itself, so ``git log --notes=agentflow`` shows the history without any
forge. Forge sinks (GitHub, GitLab, Gitea) post the same statuses over their APIs.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agentflowd.store import RevisionState

__all__ = [
    "CONTEXT_SYNC",
    "CONTEXT_VALIDATE",
    "CommitStatus",
    "DedupSink",
    "GitNotesSink",
    "MemorySink",
    "QueuedSink",
    "StatusSink",
    "describe",
]

CONTEXT_SYNC = "agentflow/sync"
CONTEXT_VALIDATE = "agentflow/validate"
NOTES_REF = "refs/notes/agentflow"
log = logging.getLogger(__name__)
#: GitHub cuts descriptions at 140 characters; we keep every forge under it.
MAX_DESCRIPTION = 140


@dataclass(frozen=True, kw_only=True)
class CommitStatus:
    """One status for one commit and context."""

    sha: str
    context: str
    state: RevisionState
    description: str
    at: datetime
    target_url: str | None = None

    def to_json(self) -> str:
        """The git-note line for this status."""
        return json.dumps(
            {
                "context": self.context,
                "state": self.state.value,
                "description": self.description,
                "target_url": self.target_url,
                "time": self.at.isoformat(),
            },
            separators=(",", ":"),
        )


def describe(text: str) -> str:
    """Fit a description into the forges' limit, marking the cut."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


class StatusSink(Protocol):
    """Somewhere commit statuses are written."""

    name: str

    def post(self, status: CommitStatus) -> None:
        """Write ``status``; raise TransientError to be retried, PermanentError to give up."""
        ...


class MemorySink:
    """Keeps statuses in a list: for tests and for the API's view of recent statuses."""

    name = "memory"

    def __init__(self) -> None:
        self.posted: list[CommitStatus] = []

    def post(self, status: CommitStatus) -> None:
        """Append ``status``."""
        self.posted.append(status)


class DedupSink:
    """Skips a post identical to the last one for the same commit and context.

    Forges keep every post (GitHub stops at 1,000 per context and commit; GitLab refuses a
    repeated state with 400), so re-reconciling a revision must not post again.
    """

    def __init__(self, inner: StatusSink) -> None:
        self.inner = inner
        self.name = inner.name
        self._last: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        self._lock = threading.Lock()
        self.max_entries = 10_000  # old commits fall out; a repeat after that is only a re-post

    def post(self, status: CommitStatus) -> None:
        """Post unless identical to the previous post of this (sha, context)."""
        key = (status.sha, status.context)
        value = (status.state.value, status.description, status.target_url)
        with self._lock:
            if self._last.get(key) == value:
                return
        self.inner.post(status)
        with self._lock:
            self._last.pop(key, None)
            self._last[key] = value  # newest last
            while len(self._last) > self.max_entries:
                del self._last[next(iter(self._last))]


class QueuedSink:
    """Posts through ``inner`` on a thread of its own, in order, so a slow or rate-limited
    forge (retries with backoff, ``Retry-After``) never holds up reconciling.

    Statuses wait in a bounded queue; when it is full the oldest is dropped (a newer status for
    the same commit supersedes it anyway). :meth:`close` drains what is queued, for at most
    ``drain_seconds``.
    """

    def __init__(self, inner: StatusSink, *, max_queued: int = 1000) -> None:
        self.inner = inner
        self.name = inner.name
        self._queue: collections.deque[CommitStatus | None] = collections.deque(maxlen=max_queued)
        self._ready = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name=f"agentflow-status-{inner.name}", daemon=True
        )
        self._thread.start()

    def post(self, status: CommitStatus) -> None:
        """Queue ``status``; returns at once."""
        with self._ready:
            self._queue.append(status)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                status = self._queue.popleft()
            if status is None:
                return
            try:
                self.inner.post(status)
            except Exception:  # logged; a status must never take the daemon down
                log.exception("posting %s to %s failed", status.context, self.name)

    def close(self, drain_seconds: float = 10.0) -> None:
        """Post what is queued (up to ``drain_seconds``), then stop the thread."""
        with self._ready:
            self._queue.append(None)
            self._ready.notify()
        self._thread.join(timeout=drain_seconds)


class GitNotesSink:
    """Appends statuses as JSON lines to ``refs/notes/agentflow`` notes in a repository."""

    name = "git-notes"

    def __init__(
        self,
        repo_path: Path,
        *,
        ref: str = NOTES_REF,
        lock_wait: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repo_path = repo_path
        self.ref = ref
        #: how long the notes ref's lock file may stand before it counts as a dead writer's
        self.lock_wait = lock_wait
        self._sleep = sleep

    def post(self, status: CommitStatus) -> None:
        """Add ``status`` as a new line of the commit's note, unless the note has a line of
        the same context and state already: one line per (commit, context, state), whichever
        node or attempt posts it (a leader that died mid-pass, then the pass done again, or
        two nodes racing, would otherwise note ``pending`` twice)."""
        import pygit2

        repo = pygit2.Repository(str(self.repo_path))
        try:
            old = repo.lookup_note(status.sha, self.ref).message
        except KeyError:
            old = ""
        for line in old.splitlines():
            try:
                seen = json.loads(line)
            except ValueError:
                continue
            if seen.get("context") == status.context and seen.get("state") == status.state.value:
                return
        lines = old.rstrip("\n") + "\n" if old.strip() else ""
        message = lines + status.to_json() + "\n"
        sig = pygit2.Signature("agentflowd", "agentflowd@localhost")
        self._write(lambda: repo.create_note(message, sig, sig, status.sha, self.ref, True), repo)

    def _write(self, write: Callable[[], object], repo: object) -> None:
        """Write the note, waiting out a live writer's lock on the notes ref and removing a
        dead one's. Git keeps a ref's ``.lock`` for the milliseconds of an update; one that
        stands for ``lock_wait`` was left by a process killed mid-write (a leader killed with
        -9, say), and would otherwise fail every later note of every node."""
        lock = Path(str(getattr(repo, "path", self.repo_path))) / f"{self.ref}.lock"
        waited, pause = 0.0, 0.01
        while True:
            try:
                write()
                return
            except OSError:
                if not lock.exists():
                    raise
                if waited >= self.lock_wait:
                    log.warning(
                        "removing %s: it stood for %.1f s, so its writer died mid-write",
                        lock,
                        waited,
                    )
                    lock.unlink(missing_ok=True)
                    write()
                    return
            self._sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.5)

    def read(self, sha: str) -> list[dict[str, object]]:
        """The statuses noted on ``sha``, oldest first."""
        import pygit2

        repo = pygit2.Repository(str(self.repo_path))
        try:
            message = repo.lookup_note(sha, self.ref).message
        except KeyError:
            return []
        return [json.loads(line) for line in message.splitlines() if line.strip()]
