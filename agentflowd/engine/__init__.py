"""Running workflows: durable executions of the DAG, step by step in the sandbox.

:class:`Engine` drives executions on the event loop; :class:`Journal` keeps their history and
state (group-committed); :class:`StepRunner` runs one step in the sandbox with its LLM calls
routed.
"""

from __future__ import annotations

from agentflowd.engine.engine import TERMINAL, Engine, EngineObserver
from agentflowd.engine.journal import Change, EventRecord, ExecutionRecord, Journal, StepRecord
from agentflowd.engine.runner import HostCall, StepJob, StepRunner

__all__ = [
    "TERMINAL",
    "Change",
    "Engine",
    "EngineObserver",
    "EventRecord",
    "ExecutionRecord",
    "HostCall",
    "Journal",
    "StepJob",
    "StepRecord",
    "StepRunner",
]
