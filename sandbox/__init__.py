"""The wasmtime sandbox that runs agent steps (a library: it never imports agentflowd).

Built by the sandbox issue: engine and compile cache, per-step stores with memory, time, CPU,
storage and call-count limits, the host-function ABI, and the guest SDK for Python agents.
"""

from __future__ import annotations

__all__: list[str] = []
