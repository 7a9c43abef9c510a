"""SQLite serves one daemon: a second one on the same file is refused at start (exit code 2, one
line naming the file and the holder's pid); readers are not; after a SIGKILL the lock is gone."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentflowd.store import SqlStore
from tests.conftest import free_port, git, init_repo, write_agents
from tests.daemon.examples import BIN, readyz, start
from tests.manifests import named
from tests.waiting import wait_for


def make_repo(path: Path) -> Path:
    path.mkdir()
    init_repo(path)
    write_agents(path)
    (path / "a.yaml").write_text(named("a"), encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a")
    return path


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The daemons a test starts; none is left behind when an assertion fails half-way."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_a_second_daemon_on_one_sqlite_file_is_refused_until_the_first_is_gone(tmp_path, started):
    repo, state = make_repo(tmp_path / "repo"), tmp_path / "state"
    database = (state / "agentflow.db").resolve()

    def serve() -> tuple[subprocess.Popen[str], str]:
        url = f"http://127.0.0.1:{free_port()}"
        args = ("--repo", str(repo), "--state-dir", str(state), "--listen", url[7:])
        started.append(start(*args))
        return started[-1], url

    def ready(url: str) -> bool:
        answer = readyz(url)
        return answer is not None and answer.status_code == 200

    first, url = serve()
    try:
        wait_for(lambda: ready(url), timeout=60, what="the first daemon")

        second, _ = serve()
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        refused = (
            f"agentflowd: database {database} is in use by agentflowd pid {first.pid}; "
            "SQLite serves one daemon: stop that one, or use PostgreSQL "
            "(--database postgresql://...) to run several"
        )
        assert err.strip().splitlines() == [refused]

        # reading is not refused: `agentflowd check`, and the database itself
        check = subprocess.run(
            [BIN / "agentflowd", "check", str(repo)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        reader = SqlStore.open(str(database))
        try:
            assert list(reader.workflow_heads()) == ["a"]
        finally:
            reader.close()
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        first.communicate(timeout=30)

    third, url = serve()
    try:
        wait_for(lambda: ready(url), timeout=60, what="a daemon after the SIGKILL")
    finally:
        third.send_signal(signal.SIGTERM)
        _, err = third.communicate(timeout=30)
    assert third.returncode == 0, err[-3000:]
