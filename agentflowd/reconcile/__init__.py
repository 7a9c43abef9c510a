"""Reconciling git (desired) with the store (actual), and reporting back to git.

``plan`` decides purely; ``apply_plan`` writes; :class:`Reconciler` runs the loop body for one
revision; the status sinks write commit statuses.
"""

from __future__ import annotations

from agentflowd.reconcile.apply import ApplyResult, apply_plan
from agentflowd.reconcile.plan import Action, Actual, Change, Desired, Plan, plan
from agentflowd.reconcile.reconciler import Reconciler, SyncOutcome
from agentflowd.reconcile.status import (
    CONTEXT_SYNC,
    CONTEXT_VALIDATE,
    CommitStatus,
    DedupSink,
    GitNotesSink,
    MemorySink,
    QueuedSink,
    StatusSink,
)

__all__ = [
    "CONTEXT_SYNC",
    "CONTEXT_VALIDATE",
    "Action",
    "Actual",
    "ApplyResult",
    "Change",
    "CommitStatus",
    "DedupSink",
    "Desired",
    "GitNotesSink",
    "MemorySink",
    "Plan",
    "QueuedSink",
    "Reconciler",
    "StatusSink",
    "SyncOutcome",
    "apply_plan",
    "plan",
]
