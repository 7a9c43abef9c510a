"""The coordinator on the store's database: leases and ownership as rows (see
:mod:`agentflowd.cluster.base`).

PostgreSQL: times are the server's ``clock_timestamp()``, claims lock with ``FOR UPDATE SKIP
LOCKED`` (two nodes claiming at once take different executions, neither waits), a release
sends ``NOTIFY agentflow_work`` so the others claim at once. SQLite: one node (a second daemon
on the file is refused at start), so a claim takes every unfinished execution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agentflowd.cluster.base import LEADER_LEASE, Claim, new_node_id, node_lease
from agentflowd.engine.journal import execution_from_row
from agentflowd.engine.states import UNFINISHED
from agentflowd.errors import StoreUnavailable
from agentflowd.store.tables import Timestamp, executions

__all__ = ["WORK_CHANNEL", "SqlCoordinator"]

#: The advisory lock held by whichever node reconciles ("agrc"; migrations hold "agnt").
RECONCILE_LOCK = 0x6167_7263
#: Notified when executions need an owner (released, or created without one).
WORK_CHANNEL = "agentflow_work"
_STATES = tuple(s.value for s in UNFINISHED)
_UNFINISHED = "state IN ('queued', 'running')"
assert _STATES == ("queued", "running")

# PostgreSQL: the server's clock decides, for every node alike
_PG_TAKE = sa.text(
    """
    INSERT INTO leases (name, holder, expires_at, acquired_at)
    VALUES (:name, :me, clock_timestamp() + make_interval(secs => :secs), clock_timestamp())
    ON CONFLICT (name) DO UPDATE SET
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at,
        acquired_at = CASE WHEN leases.holder = EXCLUDED.holder
                           THEN leases.acquired_at ELSE EXCLUDED.acquired_at END
    WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= clock_timestamp()
    RETURNING holder
    """
)
_PG_RENEW = sa.text(
    """
    UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => :secs)
    WHERE name = :name AND holder = :me AND expires_at > clock_timestamp()
    """
)
_PG_CLAIM = sa.text(
    f"""
    WITH free AS (
        SELECT e.id FROM executions e
        WHERE e.{_UNFINISHED} AND e.owner IS DISTINCT FROM :me
          AND (e.owner IS NULL OR NOT EXISTS (
                SELECT 1 FROM leases l
                WHERE l.name = 'node:' || e.owner AND l.expires_at > clock_timestamp()))
        ORDER BY e.created_at, e.id
        LIMIT :limit
        FOR UPDATE OF e SKIP LOCKED
    )
    UPDATE executions SET owner = :me FROM free WHERE executions.id = free.id
    RETURNING executions.*
    """  # noqa: S608 - constants only
)
_PG_OWN = sa.text(
    f"""
    UPDATE executions SET owner = :me
    WHERE id = :id AND {_UNFINISHED}
      AND (owner IS NULL OR owner = :me OR NOT EXISTS (
            SELECT 1 FROM leases l
            WHERE l.name = 'node:' || executions.owner AND l.expires_at > clock_timestamp()))
    """  # noqa: S608 - constants only
)
_PG_RECHECK = sa.text(
    f"""
    SELECT EXTRACT(EPOCH FROM (min(l.expires_at) - clock_timestamp()))
    FROM leases l
    WHERE l.expires_at > clock_timestamp() AND l.name IN (
        SELECT DISTINCT 'node:' || owner FROM executions
        WHERE {_UNFINISHED} AND owner IS NOT NULL AND owner <> :me)
    """  # noqa: S608 - constants only
)
_PG_LEADER = sa.text(
    "SELECT holder, EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) FROM leases"
    " WHERE name = :name AND expires_at > clock_timestamp()"
)


class SqlCoordinator:
    """Leases and ownership in the ``leases`` table and ``executions.owner``."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = 10.0,
        node: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.node = node or new_node_id()
        self.single = engine.dialect.name == "sqlite"
        self._now = now or (lambda: datetime.now(UTC))  # (SQLite only: one node's clock)
        self._leases = sa.table(
            "leases",
            sa.column("name"),
            sa.column("holder"),
            sa.column("expires_at", Timestamp()),
            sa.column("acquired_at", Timestamp()),
        )

    # -- leases ------------------------------------------------------------------------------

    def _take(self, conn: Connection, name: str) -> bool:
        if not self.single:
            row = conn.execute(
                _PG_TAKE, {"name": name, "me": self.node, "secs": self.lease_seconds}
            ).first()
            return row is not None
        now = self._now()
        until = now + timedelta(seconds=self.lease_seconds)
        leases = self._leases
        row = conn.execute(
            sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
        ).first()
        if row is None:
            conn.execute(
                sa.insert(leases).values(
                    name=name, holder=self.node, expires_at=until, acquired_at=now
                )
            )
            return True
        if row.holder != self.node and row.expires_at > now:
            return False
        values: dict[str, Any] = {"holder": self.node, "expires_at": until}
        if row.holder != self.node:
            values["acquired_at"] = now
        conn.execute(sa.update(leases).where(leases.c.name == name).values(**values))
        return True

    def join(self) -> None:
        with self.engine.begin() as conn:
            self._take(conn, node_lease(self.node))

    def rejoin(self) -> None:
        self.node = new_node_id(self.node.rsplit("-", 2)[0])
        self.join()

    def renew(self) -> bool:
        name = node_lease(self.node)
        with self.engine.begin() as conn:
            if not self.single:
                done = conn.execute(
                    _PG_RENEW, {"name": name, "me": self.node, "secs": self.lease_seconds}
                )
                return bool(done.rowcount == 1)
            now = self._now()
            leases = self._leases
            done = conn.execute(
                sa.update(leases)
                .where(
                    leases.c.name == name, leases.c.holder == self.node, leases.c.expires_at > now
                )
                .values(expires_at=now + timedelta(seconds=self.lease_seconds))
            )
            return bool(done.rowcount == 1)

    def lead(self) -> bool:
        with self.engine.begin() as conn:
            return self._take(conn, LEADER_LEASE)

    def resign(self) -> None:
        self._drop([LEADER_LEASE])

    def leave(self) -> None:
        self._drop([node_lease(self.node), LEADER_LEASE])

    def _drop(self, names: list[str]) -> None:
        leases = self._leases
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(leases).where(leases.c.name.in_(names), leases.c.holder == self.node)
            )

    def _leader(self) -> tuple[str, float] | None:
        with self.engine.connect() as conn:
            if not self.single:
                row = conn.execute(_PG_LEADER, {"name": LEADER_LEASE}).first()
                return None if row is None else (str(row[0]), float(row[1]))
            leases = self._leases
            now = self._now()
            found = conn.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(
                    leases.c.name == LEADER_LEASE, leases.c.expires_at > now
                )
            ).first()
        return None if found is None else (found.holder, (found.expires_at - now).total_seconds())

    def leader(self) -> str | None:
        found = self._leader()
        return None if found is None else found[0]

    def leader_expires_in(self) -> float | None:
        found = self._leader()
        return None if found is None else found[1]

    # -- ownership ---------------------------------------------------------------------------

    def claim(self, limit: int) -> Claim:
        with self.engine.begin() as conn:
            if not self.single:
                rows = conn.execute(_PG_CLAIM, {"me": self.node, "limit": limit}).mappings().all()
                # (psycopg decodes jsonb and gives aware timestamps: the rows read as a table's)
                records = [execution_from_row(r) for r in rows]
                left = conn.execute(_PG_RECHECK, {"me": self.node}).scalar()
                recheck = None if left is None else max(0.0, float(left))
            else:  # one node: every unfinished execution is ours
                ids = list(
                    conn.execute(
                        sa.select(executions.c.id)
                        .where(executions.c.state.in_(_STATES))
                        .where(
                            sa.or_(executions.c.owner.is_(None), executions.c.owner != self.node)
                        )
                        .order_by(executions.c.created_at, executions.c.id)
                        .limit(limit)
                    ).scalars()
                )
                if ids:
                    conn.execute(
                        sa.update(executions)
                        .where(executions.c.id.in_(ids))
                        .values(owner=self.node)
                    )
                rows = (
                    conn.execute(sa.select(executions).where(executions.c.id.in_(ids)))
                    .mappings()
                    .all()
                )
                records = [execution_from_row(r) for r in rows]
                recheck = None
        records.sort(key=lambda r: (r.created_at, r.id))
        return Claim(records=records, recheck=recheck)

    def own(self, execution_id: str) -> bool:
        with self.engine.begin() as conn:
            if not self.single:
                done = conn.execute(_PG_OWN, {"me": self.node, "id": execution_id})
            else:
                done = conn.execute(
                    sa.update(executions)
                    .where(executions.c.id == execution_id, executions.c.state.in_(_STATES))
                    .values(owner=self.node)
                )
            return bool(done.rowcount == 1)

    def release(self, execution_ids: list[str]) -> None:
        if not execution_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(executions)
                .where(executions.c.id.in_(execution_ids), executions.c.owner == self.node)
                .values(owner=None)
            )
            if not self.single:
                conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": WORK_CHANNEL})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """A PostgreSQL advisory lock, on a connection held while it is (a node that dies
        drops its lock with its connection); SQLite is one node: its git thread alone
        serializes."""
        if self.single:
            yield
            return
        try:
            conn = self.engine.connect()
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": RECONCILE_LOCK})
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailable(" ".join(str(exc.orig).split()), delay=1.0) from exc
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": RECONCILE_LOCK})
            except sa.exc.DBAPIError:
                pass  # the connection is gone, and the lock with it
            finally:
                conn.close()

    def close(self) -> None:
        """The engine is the store's: nothing of its own to close."""
