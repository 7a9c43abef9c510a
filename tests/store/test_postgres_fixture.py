"""The PostgreSQL test fixture: a private, empty database per run, reachable over TCP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.postgres


def test_fixture_gives_a_fresh_private_database(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE probe (id int)")
    assert name is not None and name[0].startswith("agentflow_test_")
    assert tables == (0,)
