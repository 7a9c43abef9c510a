"""The sandbox's own errors (the library never imports agentflowd).

Agents failing are not errors of the sandbox: they are :mod:`~sandbox.outcome` values. These
exceptions mean the sandbox itself could not do what was asked.

::

    SandboxError
    ├── CompileError        the bytes are not a valid agent component
    └── CacheError          the compile cache directory is unusable or not ours
"""

from __future__ import annotations

__all__ = ["CacheError", "CompileError", "SandboxError"]


class SandboxError(Exception):
    """Base class of the sandbox's errors."""


class CompileError(SandboxError):
    """The agent's bytes do not compile to a component of the ``agentflow:agent`` world."""


class CacheError(SandboxError):
    """The compiled-code cache cannot be used safely (permissions, ownership)."""
