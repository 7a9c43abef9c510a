"""Several daemons on one PostgreSQL database: node leases, execution ownership, the elected
leader (see :mod:`agentflowd.cluster.base`)."""

from __future__ import annotations

from agentflowd.cluster.base import Claim, Coordinator, NodeRole, new_node_id
from agentflowd.cluster.memory import MemoryCoordinator, MemoryLeases
from agentflowd.cluster.sql import SqlCoordinator

__all__ = [
    "Claim",
    "Coordinator",
    "MemoryCoordinator",
    "MemoryLeases",
    "NodeRole",
    "SqlCoordinator",
    "new_node_id",
]
