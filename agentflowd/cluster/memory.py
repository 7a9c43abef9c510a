"""The coordinator in memory: many nodes in one process, on one :class:`MemoryLog` and one
clock, so failover can be tested in milliseconds (a node "dies" by no longer renewing).

Each node has its own :class:`MemoryCoordinator`; they share a :class:`MemoryLeases`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentflowd.cluster.base import LEADER_LEASE, Claim, new_node_id, node_lease
from agentflowd.engine.memlog import MemoryLog
from agentflowd.engine.records import ExecutionRecord

__all__ = ["MemoryCoordinator", "MemoryLeases"]


@dataclass
class _Lease:
    holder: str
    expires_at: datetime


class MemoryLeases:
    """The lease table of a set of in-memory nodes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, _Lease] = {}
        self.reconciling = threading.Lock()


class MemoryCoordinator:
    """One node's view of the shared in-memory leases and log."""

    def __init__(
        self,
        *,
        log: MemoryLog,
        leases: MemoryLeases,
        now: Callable[[], datetime],
        lease_seconds: float = 10.0,
        node: str | None = None,
        single: bool = False,
    ) -> None:
        self.log = log
        self.leases = leases
        self.now = now
        self.lease_seconds = lease_seconds
        self.node = node or new_node_id()
        self.single = single

    def _take(self, name: str, *, steal: bool) -> bool:
        """Take or renew lease ``name`` (``steal``: also when another holder's expired)."""
        now = self.now()
        with self.leases.lock:
            row = self.leases.rows.get(name)
            mine = row is not None and row.holder == self.node
            if row is not None and not mine and not (steal and row.expires_at <= now):
                return False
            if mine and not steal and row is not None and row.expires_at <= now:
                return False  # (a node's own lease, expired: it must fence itself)
            self.leases.rows[name] = _Lease(self.node, now + timedelta(seconds=self.lease_seconds))
            return True

    def join(self) -> None:
        self._take(node_lease(self.node), steal=True)

    def rejoin(self) -> None:
        self.node = new_node_id(self.node.rsplit("-", 2)[0])
        self.join()

    def renew(self) -> bool:
        return self._take(node_lease(self.node), steal=False)

    def _alive(self, node: str | None, now: datetime) -> bool:
        if node is None:
            return False
        row = self.leases.rows.get(node_lease(node))
        return row is not None and row.expires_at > now

    def claim(self, limit: int) -> Claim:
        now = self.now()
        with self.leases.lock:
            alive = {n for n, row in self.leases.rows.items() if row.expires_at > now}

        def free(record: ExecutionRecord) -> bool:
            if record.owner == self.node:
                return False
            return self.single or record.owner is None or node_lease(record.owner) not in alive

        taken = self.log.reassign(free, self.node, limit)
        return Claim(records=taken, recheck=self._recheck(now))

    def _recheck(self, now: datetime) -> float | None:
        owners = {r.owner for r in self.log.unfinished() if r.owner not in (None, self.node)}
        with self.leases.lock:
            expiries = [
                self.leases.rows[node_lease(o)].expires_at
                for o in owners
                if o is not None and node_lease(o) in self.leases.rows
            ]
        live = [e for e in expiries if e > now]
        return min(live).timestamp() - now.timestamp() if live else None

    def own(self, execution_id: str) -> bool:
        now = self.now()

        def free(record: ExecutionRecord) -> bool:
            return record.id == execution_id and (
                record.owner == self.node or not self._alive(record.owner, now)
            )

        return bool(self.log.reassign(free, self.node, 1))

    def release(self, execution_ids: list[str]) -> None:
        wanted = set(execution_ids)
        self.log.reassign(
            lambda r: r.id in wanted and r.owner == self.node, None, len(execution_ids)
        )

    def leave(self) -> None:
        with self.leases.lock:
            for name in (node_lease(self.node), LEADER_LEASE):
                row = self.leases.rows.get(name)
                if row is not None and row.holder == self.node:
                    del self.leases.rows[name]

    def lead(self) -> bool:
        return self._take(LEADER_LEASE, steal=True)

    def resign(self) -> None:
        with self.leases.lock:
            row = self.leases.rows.get(LEADER_LEASE)
            if row is not None and row.holder == self.node:
                del self.leases.rows[LEADER_LEASE]

    def leader(self) -> str | None:
        now = self.now()
        with self.leases.lock:
            row = self.leases.rows.get(LEADER_LEASE)
        return row.holder if row is not None and row.expires_at > now else None

    def leader_expires_in(self) -> float | None:
        now = self.now()
        with self.leases.lock:
            row = self.leases.rows.get(LEADER_LEASE)
        if row is None or row.expires_at <= now:
            return None
        return (row.expires_at - now).total_seconds()

    def exclusive(self) -> AbstractContextManager[None]:
        return self.leases.reconciling  # type: ignore[return-value]

    def close(self) -> None:
        """Nothing to release."""
