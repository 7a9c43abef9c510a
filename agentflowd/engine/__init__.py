"""Running workflows: durable executions of the DAG, step by step in the sandbox.

Three parts, as ARCHITECTURE.md draws them: the pure core (:mod:`~agentflowd.engine.core`:
the execution state machine, on the vocabulary of :mod:`~agentflowd.engine.states`); the
executor (:class:`Engine`: threads, timers, the sandbox through :class:`StepRunner`); and the
execution-log port (:class:`ExecutionLog`: the SQL :class:`Journal`, group-committed, and its
in-memory twin :class:`MemoryLog`). Time comes in through a :class:`Clock`.
"""

from __future__ import annotations

from agentflowd.engine.clock import Clock, FakeClock, SystemClock
from agentflowd.engine.engine import Engine, EngineObserver, StepRunning
from agentflowd.engine.journal import Journal
from agentflowd.engine.log import ExecutionLog
from agentflowd.engine.memlog import MemoryLog
from agentflowd.engine.records import EventRecord, ExecutionRecord, LogEntry, StepRecord
from agentflowd.engine.runner import HostCall, StepJob, StepRunner
from agentflowd.engine.states import TERMINAL, EventType, ExecutionState, StepState

__all__ = [
    "Clock",
    "Engine",
    "EngineObserver",
    "EventRecord",
    "EventType",
    "ExecutionLog",
    "ExecutionRecord",
    "ExecutionState",
    "FakeClock",
    "HostCall",
    "Journal",
    "LogEntry",
    "MemoryLog",
    "StepJob",
    "StepRecord",
    "StepRunner",
    "StepRunning",
    "StepState",
    "SystemClock",
    "TERMINAL",
]
