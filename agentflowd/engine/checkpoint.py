"""SQLite WAL checkpoints off the journal's hot path.

By default SQLite checkpoints inside the commit that takes the write-ahead log past 1000 pages:
that commit takes 5-10 ms instead of ~0.1 ms (measured: 16 of 5,000 journal commits), and the
step or trigger waiting on it waits as long. The journal's connection turns automatic
checkpoints off, and this thread checkpoints on a connection of its own after every
:data:`EVERY_COMMITS` commits, or :data:`EVERY_SECONDS` after the first commit since the last
checkpoint, whichever is first. It sleeps while nothing is committed.

A checkpoint has two parts. A ``PASSIVE`` checkpoint copies the log into the database while
commits go on. That alone never lets the log start over under steady load: SQLite rewinds the
log only when a checkpoint has copied all of it, and commits keep adding frames while it runs
(measured: 65 MB of log after 5,000 commits, and growing). So once the log is
:data:`MAX_FRAMES` long, a second ``PASSIVE`` checkpoint runs with the journal's commits held
back (``pause``): it copies only what was added meanwhile (with the database's fsync, a few
milliseconds at most on this machine), and the next commit starts the log over. (Its
``copied`` count cannot decide this: it counts against the log as it was when it began.)

The store's other connections (the reconciler's, the API's) keep SQLite's own checkpoints at
1000 pages; with the log kept near that length they seldom reach it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["EVERY_COMMITS", "EVERY_SECONDS", "MAX_FRAMES", "WalCheckpointer"]

#: Commits between checkpoints (a journal commit adds ~4 pages: SQLite's own default is 1000).
EVERY_COMMITS = 250
#: The longest a committed page waits for its checkpoint.
EVERY_SECONDS = 1.0
#: A log this long (4 KiB pages: 4 MiB, SQLite's own threshold) is checkpointed with commits
#: held back, so it can start over (see the module's docstring).
MAX_FRAMES = 1000


class WalCheckpointer:
    """Checkpoints the SQLite database of ``engine`` on a thread of its own; ``pause`` holds
    the journal's commits back while it is entered."""

    def __init__(
        self,
        engine: Engine,
        pause: Callable[[], AbstractContextManager[None]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monotonic = monotonic
        self.engine = engine
        self.pause = pause
        self.checkpoints = 0  # (for tests)
        #: checkpoints held back commits for, that copied the whole log: the next commit
        #: starts it over (for tests: under steady load this is what keeps the log short)
        self.rewinds = 0
        self._cond = threading.Condition(threading.Lock())
        self._commits = 0  # since the last checkpoint
        self._first = 0.0  # when the first of them was noted (monotonic)
        self._stopping = False
        self._raw: Any = None
        self._thread = threading.Thread(target=self._run, name="agentflow-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """The journal committed a transaction (called by the committing thread)."""
        with self._cond:
            self._commits += 1
            if self._commits == 1:
                self._first = self.monotonic()
                self._cond.notify()  # start the timer
            elif self._commits == EVERY_COMMITS:
                self._cond.notify()

    def close(self) -> None:
        """Checkpoint what is left and stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._stopping:
                        if self._commits == 0:
                            self._cond.wait()
                            continue
                        left = self._first + EVERY_SECONDS - self.monotonic()
                        if self._commits >= EVERY_COMMITS or left <= 0:
                            break
                        self._cond.wait(left)
                    stopping, pending = self._stopping, self._commits
                    self._commits = 0
                if pending:
                    self._checkpoint(hold=not stopping)  # (the journal's writer has ended)
                if stopping:
                    return
        finally:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()

    def _checkpoint(self, *, hold: bool) -> None:
        try:
            if self._raw is None:
                self._raw = self.engine.raw_connection()
            if (
                self._passive()[0] >= MAX_FRAMES and hold
            ):  # under steady load it would never start over
                with self.pause():
                    frames, copied = self._passive()
                if copied >= frames:
                    self.rewinds += 1
            self.checkpoints += 1
        except Exception:  # the database is busy or gone: the next checkpoint tries again
            log.warning("a WAL checkpoint failed", exc_info=True)
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()
                self._raw = None

    def _passive(self) -> tuple[int, int]:
        """One ``PASSIVE`` checkpoint; how many frames the log held, and how many of them
        are in the database now."""
        cursor = self._raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            _busy, frames, copied = cursor.fetchone()
        finally:
            cursor.close()
        return int(frames), int(copied)
