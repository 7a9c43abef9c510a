"""One daemon per SQLite file: the lock beside the database, in one process (two open file
descriptions conflict like two processes do); tests/daemon/test_single_node.py runs processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentflowd.errors import DatabaseInUse, UsageError
from agentflowd.store.filelock import DatabaseLock, lock_path, sqlite_file


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("state/agentflow.db", Path("state/agentflow.db").resolve()),
        ("sqlite:///state/x.db", Path("state/x.db").resolve()),
        ("sqlite:////srv/af/x.db", Path("/srv/af/x.db")),
        ("~/x.db", Path("~/x.db").expanduser()),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:x?mode=memory&uri=true", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_which_databases_are_locked(url, expected):
    assert sqlite_file(url) == expected


def test_a_second_lock_is_refused_naming_the_file_and_the_holder(tmp_path: Path):
    database = tmp_path / "agentflow.db"
    first = DatabaseLock.acquire(database)
    assert lock_path(database).read_text() == f"{os.getpid()}\n"
    with pytest.raises(DatabaseInUse) as info:
        DatabaseLock.acquire(database)
    assert info.value.pid == os.getpid() and info.value.database == database
    message = str(info.value)
    assert f"database {database} is in use by agentflowd pid {os.getpid()}" in message
    assert "\n" not in message and isinstance(info.value, UsageError)  # exit code 2

    first.release()
    first.release()  # idempotent
    assert not first.held
    second = DatabaseLock.acquire(database)  # the file stays; only the lock matters
    assert second.held
    second.release()


def test_an_unwritable_directory_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot create the lock file"):
        DatabaseLock.acquire(tmp_path / "missing" / "agentflow.db")
