"""The vocabulary of executions: their states, their steps' states and the events of their history.

String enums (``StrEnum``): a value *is* its string, so the store's ``state`` columns, the API's
JSON and the event types in ``execution_events`` are the same text as before the enums existed,
and comparing a row's string with a member works. Nothing outside this module spells a state.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EventType",
    "ExecutionState",
    "StepState",
    "TERMINAL",
    "UNFINISHED",
]


class ExecutionState(StrEnum):
    """Where an execution is. ``queued`` waits for a slot under ``maxConcurrentExecutions``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        """Whether nothing more happens to an execution in this state."""
        return self in TERMINAL


#: States an execution never leaves.
TERMINAL = frozenset(
    {
        ExecutionState.SUCCEEDED,
        ExecutionState.FAILED,
        ExecutionState.CANCELLED,
        ExecutionState.TIMED_OUT,
    }
)
#: States of executions some node must drive (resume after a restart or a takeover).
UNFINISHED = (ExecutionState.QUEUED, ExecutionState.RUNNING)


class StepState(StrEnum):
    """Where a step is. ``retrying`` is ``pending`` with a retry timer armed: the store records
    it as ``pending`` with ``next_attempt_at`` (a restart runs it at once)."""

    PENDING = "pending"
    RETRYING = "retrying"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    """The entries of an execution's history (``execution_events.type``)."""

    EXECUTION_QUEUED = "execution.queued"
    EXECUTION_RUNNING = "execution.running"
    EXECUTION_SUCCEEDED = "execution.succeeded"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    EXECUTION_TIMED_OUT = "execution.timed_out"
    STEP_STARTED = "step.started"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_RETRYING = "step.retrying"
    STEP_SKIPPED = "step.skipped"
    STEP_CANCELLED = "step.cancelled"
    STEP_REQUEUED = "step.requeued"
    STEP_HOST_CALL = "step.host_call"

    @classmethod
    def of_execution(cls, state: ExecutionState) -> EventType:
        """The event that puts an execution in ``state``."""
        return _OF_EXECUTION[state]

    @property
    def ends_execution(self) -> bool:
        """Whether this event is an execution's last."""
        return self.value.startswith("execution.") and ExecutionState(self.value[10:]).terminal


_OF_EXECUTION = {state: EventType(f"execution.{state.value}") for state in ExecutionState}
