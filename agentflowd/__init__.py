"""agentflowd: a GitOps reconciler daemon for AI agent workflows.

The public Python surface: the SDK (``AgentFlowClient``, ``Workflow``, ``Agent``, ``LLMConfig``;
see :mod:`agentflowd.sdk`), the error hierarchy, and the manifest loader. The manifest *model*
is :class:`agentflowd.manifest.Workflow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflowd._version import __version__
from agentflowd.errors import (
    AgentFlowError,
    ManifestError,
    PermanentError,
    RevisionNotFound,
    SourceError,
    TransientError,
    UsageError,
)
from agentflowd.manifest import Diagnostic, LoadReport, SourceFile, load_sources
from agentflowd.sdk import Agent, Execution, ExecutionEvent, LLMConfig, Workflow

if TYPE_CHECKING:
    from agentflowd.client import AgentFlowClient

__all__ = [
    "Agent",
    "AgentFlowClient",
    "AgentFlowError",
    "Diagnostic",
    "Execution",
    "ExecutionEvent",
    "LLMConfig",
    "LoadReport",
    "ManifestError",
    "PermanentError",
    "RevisionNotFound",
    "SourceError",
    "SourceFile",
    "TransientError",
    "UsageError",
    "Workflow",
    "__version__",
    "load_sources",
]


def __getattr__(name: str) -> object:
    # the client needs httpx (~0.1 s to import): loaded for those who use it, not every CLI run
    if name == "AgentFlowClient":
        from agentflowd.client import AgentFlowClient

        return AgentFlowClient
    raise AttributeError(f"module 'agentflowd' has no attribute {name!r}")
