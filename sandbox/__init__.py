"""The wasmtime sandbox that runs agent steps (a library: it never imports agentflowd).

:class:`SandboxEngine` holds the engine, its epoch ticker and compile cache; :func:`run_step`
runs one step in a fresh store under :class:`StepLimits` and returns a :class:`StepReport` with a
typed :class:`Outcome`. The agent ABI is the WIT world in ``sandbox/wit/agent.wit``.
"""

from __future__ import annotations

from sandbox.context import HostCallbacks, HostCallError, NetworkDenied, RunContext
from sandbox.engine import SandboxEngine
from sandbox.errors import CacheError, CompileError, SandboxError
from sandbox.http import HttpPolicy, make_http_fetch
from sandbox.limits import StepLimits
from sandbox.outcome import LimitKind, Outcome, OutcomeKind, StepReport
from sandbox.runner import HOST_INTERFACE, run_step

__all__ = [
    "CacheError",
    "CompileError",
    "HOST_INTERFACE",
    "HostCallError",
    "HostCallbacks",
    "HttpPolicy",
    "LimitKind",
    "NetworkDenied",
    "Outcome",
    "OutcomeKind",
    "RunContext",
    "SandboxEngine",
    "SandboxError",
    "StepLimits",
    "StepReport",
    "make_http_fetch",
    "run_step",
]
