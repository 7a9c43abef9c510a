"""What the execution log holds: executions, their steps and their history, and the entries
that change them.

Every transition is written as one :class:`LogEntry`: an event for the execution's history
(``seq`` numbered per execution) plus the columns of the rows it sets, applied in one
transaction. The pure core (:mod:`agentflowd.engine.core`) makes entries; an
:class:`~agentflowd.engine.log.ExecutionLog` records them.

Values only: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentflowd.engine.states import EventType, StepState

__all__ = [
    "EventRecord",
    "ExecutionRecord",
    "LogEntry",
    "RawJson",
    "StepRecord",
    "Then",
]

#: What runs once a posted entry is durable (or failed to be): gets the error or None.
Then = Callable[[BaseException | None], None]


@dataclass(frozen=True, kw_only=True)
class ExecutionRecord:
    """An execution's materialized state."""

    id: str
    workflow: str
    generation: int
    spec: dict[str, Any]
    images: dict[str, Any]
    state: str  # an ExecutionState's value
    trigger: str
    trigger_key: str | None
    input: Any
    output: Any
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    owner: str | None = None  # the node driving it (several nodes on PostgreSQL)


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """A step's latest attempt."""

    execution_id: str
    step: str
    state: str  # a StepState's value (never "retrying": that is "pending" with a time)
    attempt: int
    image: str
    image_sha256: str | None
    output: Any
    error: str | None
    log: str | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """One entry of an execution's history."""

    execution_id: str
    seq: int
    at: datetime
    type: str  # an EventType's value
    step: str | None
    attempt: int | None
    data: Any


class RawJson:
    """A JSON column's value given as its JSON text (already valid): written as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJson) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"RawJson({self.text!r})"


@dataclass(kw_only=True, slots=True)
class LogEntry:
    """One transition: its event and the rows it sets (all in one transaction)."""

    execution_id: str
    type: EventType | str
    at: datetime
    step: str | None = None
    attempt: int | None = None
    data: Any = None
    execution: dict[str, Any] = field(default_factory=dict)  # columns of executions to set
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> columns to set
    create: tuple[ExecutionRecord, list[StepRecord]] | None = None  # a new execution
    #: the node that must still own the execution for this entry to be recorded (None: no
    #: check): a node that lost its lease cannot write over the one that took its work over
    fence: str | None = None

    @classmethod
    def step_event(
        cls,
        execution_id: str,
        kind: EventType,
        step: str,
        *,
        at: datetime,
        attempt: int | None = None,
        data: Any = None,
        fence: str | None = None,
        **columns: Any,
    ) -> LogEntry:
        """The event ``kind`` of ``step``, setting ``columns`` of its row (if any; the row then
        records the event's ``attempt`` too: it holds the latest attempt)."""
        if columns and attempt is not None:
            columns["attempt"] = attempt
        return cls(
            execution_id=execution_id,
            type=kind,
            at=at,
            step=step,
            attempt=attempt,
            data=data,
            steps={step: columns} if columns else {},
            fence=fence,
        )


def stored_step_state(state: StepState) -> str:
    """A step state as its row records it (``retrying`` is ``pending`` with a time)."""
    return StepState.PENDING.value if state is StepState.RETRYING else state.value
