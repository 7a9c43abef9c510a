"""The PostgreSQL test fixture: a private, empty database, dropped afterwards."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_postgres_database, postgres_admin_url

pytestmark = pytest.mark.postgres


def test_fresh_database_is_empty_private_and_dropped():
    import psycopg

    admin = postgres_admin_url()
    with fresh_postgres_database(admin) as url:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert row is not None
        name = row[0]
        assert name.startswith("agentflow_test_")
        assert tables == (0,)
    with psycopg.connect(admin) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert left.fetchone() == (0,)
