"""Several daemons on one database: which node drives which execution, and which node leads.

PostgreSQL is the distributed engine; there is no home-made consensus. Two kinds of lease,
rows of one table (``leases``), each renewed by its holder before it expires and free for
anyone to take after:

* ``node:ID`` — a node is alive. Every unfinished execution has an ``owner``, the node that
  drives it; a node *claims* executions that have no owner, or whose owner's lease expired
  (``SELECT … FOR UPDATE SKIP LOCKED``, so two nodes never claim the same one). A node that
  cannot renew in time stops driving its executions (it *fences* itself) and joins again
  under a new id; the journal refuses entries of an execution its writer no longer owns, so a
  node that lost its lease cannot write over the one that took its work over.
* ``leader`` — the elected singleton: the reconciler (following git, applying, posting commit
  statuses), the cron scheduler and ref validation run on the leader only. Followers serve
  the API and run steps, and take over within the lease when the leader goes.

Times come from the database's clock on PostgreSQL (nodes' clocks may disagree), so a lease
means the same to every node. SQLite is one node: every unfinished execution is this node's.

The interface, :class:`Coordinator`, has an in-memory twin (:mod:`agentflowd.cluster.memory`,
many nodes in one process on a fake clock) and the SQL one (:mod:`agentflowd.cluster.sql`);
one contract suite runs on all of them.
"""

from __future__ import annotations

import os
import secrets
import socket
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from agentflowd.engine.records import ExecutionRecord
from agentflowd.node import NodeRole

__all__ = ["Claim", "Coordinator", "LEADER_LEASE", "NodeRole", "new_node_id", "node_lease"]

#: The leader's lease.
LEADER_LEASE = "leader"


def node_lease(node: str) -> str:
    """The lease that says node ``node`` is alive."""
    return f"node:{node}"


def new_node_id(name: str | None = None) -> str:
    """A node id: the configured name or the host's, the process id, and a random part (a
    restarted daemon is a new node: its old executions are taken over as a dead node's)."""
    base = (name or socket.gethostname() or "node")[:80]
    return f"{base}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """Executions a claim took over, and when another may be worth making."""

    records: list[ExecutionRecord]
    #: seconds until the next lease of another node that owns unfinished work expires (None:
    #: none does); a takeover is due then if that node has not renewed
    recheck: float | None


class Coordinator(Protocol):
    """Node liveness, execution ownership and leadership (see the module docstring)."""

    node: str
    lease_seconds: float
    #: one node only (SQLite): claims take every unfinished execution, whoever owned it
    single: bool

    def join(self) -> None:
        """Take this node's lease (a node joins once; after losing its lease it joins again
        under a new id: see :meth:`rejoin`)."""

    def rejoin(self) -> None:
        """Join again under a new node id (after this node's lease was lost)."""

    def renew(self) -> bool:
        """Renew this node's lease; False when it had expired (the node must fence itself:
        others may have taken its executions)."""

    def claim(self, limit: int) -> Claim:
        """Take up to ``limit`` unfinished executions that no live node owns, oldest first."""

    def own(self, execution_id: str) -> bool:
        """Take one execution if no live node owns it (a hand-over on request)."""

    def release(self, execution_ids: list[str]) -> None:
        """Give executions up (a graceful stop): any node may claim them at once."""

    def leave(self) -> None:
        """Give up this node's lease and the leader's if held (a graceful stop)."""

    def lead(self) -> bool:
        """Take or renew the leader's lease; whether this node leads now."""

    def resign(self) -> None:
        """Give the leader's lease up if this node holds it."""

    def leader(self) -> str | None:
        """The node holding a live leader's lease, if any."""

    def leader_expires_in(self) -> float | None:
        """Seconds until the leader's lease expires (None: no live leader): a follower tries
        to take over then, if the leader has not renewed."""

    def exclusive(self) -> AbstractContextManager[None]:
        """Held by whoever reconciles (a pass, a sync, a rollback on any node): never two at
        once in the cluster. Raises :class:`~agentflowd.errors.StoreUnavailable` when the
        database cannot be asked."""

    def close(self) -> None:
        """Release connections (not the leases: see :meth:`leave`)."""
