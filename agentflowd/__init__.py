"""agentflowd: a GitOps reconciler daemon for AI agent workflows.

The public Python surface. The manifest model and loader are importable today; the client SDK
(``AgentFlowClient``) arrives with the API.
"""

from __future__ import annotations

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
from agentflowd.manifest import Diagnostic, LoadReport, SourceFile, Workflow, load_sources

__all__ = [
    "AgentFlowError",
    "Diagnostic",
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
