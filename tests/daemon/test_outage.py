"""A database outage under load: PostgreSQL refuses the daemon's connections and cuts the open
ones for 15 s while executions run. During it /readyz says 503 and why; afterwards every
execution finishes, none twice, and the history of each is whole."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import make_url

from agentflowd.store.sql import create_engine
from tests.conftest import free_port, fresh_postgres_database, postgres_admin_url
from tests.daemon.test_cluster import UNFINISHED, Node, make_repo, start_executions
from tests.daemon.test_durability import count
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 60
OUTAGE = 15.0


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database(postgres_admin_url()) as url:
        yield url


def readyz(url: str) -> tuple[int, list[str]] | None:
    try:
        answer = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.status_code, answer.json().get("reasons", [])


def test_a_15_s_outage_under_load_strands_nothing(tmp_path: Path, database: str) -> None:
    repo = make_repo(tmp_path / "repo")
    node = Node("solo", f"http://127.0.0.1:{free_port()}", tmp_path / "state")
    node.start(repo, database)
    engine = create_engine(database)
    name = make_url(database).database or ""
    admin = psycopg.connect(postgres_admin_url(), autocommit=True)
    try:
        wait_for(lambda: (readyz(node.url) or (0,))[0] == 200, timeout=90, what="ready")

        start_executions([node.url], EXECUTIONS)
        done = "SELECT COUNT(*) FROM execution_events WHERE type = 'step.succeeded'"
        wait_for(lambda: count(engine, done) >= EXECUTIONS, timeout=120, what="some progress")
        # the outage: refused, and the open connections cut
        engine.dispose()
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        began = time.monotonic()
        seen: list[tuple[int, list[str]]] = []

        def outage_over() -> bool:
            """Probe /readyz as a load balancer would; the outage lasts OUTAGE seconds (the
            scenario's length, not a bound on anything the daemon does)."""
            answer = readyz(node.url)
            if answer is not None:
                seen.append(answer)
            return time.monotonic() - began >= OUTAGE

        wait_for(outage_over, timeout=OUTAGE + 60, what="the outage's end")
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
        )
        finished = f"SELECT COUNT(*) FROM executions WHERE NOT ({UNFINISHED})"  # noqa: S608
        wait_for(lambda: count(engine, finished) == EXECUTIONS, timeout=180, what="the end")
        wait_for(lambda: (readyz(node.url) or (0,))[0] == 200, timeout=60, what="ready again")
        with engine.connect() as conn:
            states = Counter(r[0] for r in conn.execute(sa.text("SELECT state FROM executions")))
            rows = conn.execute(
                sa.text(
                    "SELECT execution_id, seq, type, step FROM execution_events "
                    "ORDER BY execution_id, seq"
                )
            ).all()
    finally:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
        )
        admin.close()
        if node.proc is not None and node.proc.poll() is None:
            node.proc.terminate()
            node.proc.wait(timeout=30)
        engine.dispose()
    # /readyz said 503 during the outage, with the database as the reason
    down = [reasons for status, reasons in seen if status == 503]
    assert down, seen
    assert all(any(r.startswith("database unreachable") for r in rs) for rs in down)
    assert states == {"succeeded": EXECUTIONS}
    history: dict[str, list[tuple[int, str, str | None]]] = {}
    for execution_id, seq, kind, step in rows:
        history.setdefault(execution_id, []).append((seq, kind, step))
    for execution_id, events in history.items():
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1)), execution_id
        succeeded = Counter(step for _, kind, step in events if kind == "step.succeeded")
        assert succeeded == dict.fromkeys("abcd", 1), (execution_id, events)
        assert events[-1][1] == "execution.succeeded"
