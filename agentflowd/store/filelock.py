"""One daemon per SQLite database: an exclusive lock on ``<database>.lock``, held while it runs.

SQLite is the single-node store: two daemons on one file would both reconcile, both run the
schedules and both resume and run the same executions, with nothing to share the work out
(PostgreSQL is how several nodes share one state, see docs/daemon.md). So
``agentflowd serve`` takes this lock before it opens (or migrates) the database, and a second
daemon stops at once with exit code 2, naming the file and the pid that holds it.

Why ``flock`` on a file beside the database, not on the database itself: SQLite takes POSIX
record locks on the database, and a POSIX lock is dropped when *any* descriptor of the file is
closed by the process, which would let our lock and SQLite's undo each other. ``flock`` locks
belong to the open file description: the kernel releases them when the process ends, however
it ends, so a daemon killed with SIGKILL never blocks its restart, and no stale-lock cleanup
is needed. The descriptor is close-on-exec, so git and sandbox worker processes never inherit
(and outlive us holding) the lock.

The holder writes its pid into the file; the file is never removed (removing a locked file lets
a third process lock a new file of the same name while the first still runs). Reading commands
(``agentflowd check``, the CLI, which goes through the API) take no lock, and neither do the
daemon's own connections and migrations: SQLite's locks are separate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from agentflowd.errors import DatabaseInUse, UsageError
from agentflowd.store.sql import normalize_url

__all__ = ["DatabaseLock", "lock_path", "sqlite_file"]


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (or path); None for PostgreSQL and in-memory SQLite."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("mode") == "memory":
        return None
    database = (parsed.database or "").removeprefix("file:")
    if database in ("", ":memory:"):
        return None
    return Path(database).expanduser().resolve()


class DatabaseLock:
    """The exclusive lock of one SQLite database, held until :meth:`release` or the exit."""

    def __init__(self, database: Path, fd: int) -> None:
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> DatabaseLock:
        """Lock ``database`` for this process; raises :class:`DatabaseInUse` when another
        process (or another lock in this one) holds it."""
        path = lock_path(database)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot create the lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DatabaseInUse(database, pid=holder) from None
        except OSError as exc:  # e.g. a file system without locks
            os.close(fd)
            raise UsageError(f"cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(database, fd)

    @property
    def held(self) -> bool:
        """True until released."""
        return self._fd is not None

    def release(self) -> None:
        """Let another daemon start (idempotent; the kernel does it too when we exit)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def lock_path(database: Path) -> Path:
    """``<database>.lock``, beside the database."""
    return database.with_name(database.name + ".lock")


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote (None while it is being written, or if unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
