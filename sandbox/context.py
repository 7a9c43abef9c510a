"""What the host functions of one step work with: counters, scratch files, the log, callbacks.

Host functions never raise into wasmtime (wasmtime-py hands host exceptions over through a
module-level variable; under threads about 1 % of them reach the wrong thread or get lost,
measured): every failure is returned to the guest as ``err``, and a breached limit is also
recorded here so the step ends as LimitExceeded whatever the agent does with the error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.limits import StepLimits
from sandbox.outcome import LimitKind

__all__ = ["HostCallError", "HostCallbacks", "NetworkDenied", "RunContext"]


class HostCallError(Exception):
    """Raised by a callback to return ``err(message)`` to the guest (not a limit breach)."""


class NetworkDenied(HostCallError):
    """Raised by the HTTP callback for a host or address the agent may not reach; the step
    then ends as NetworkDenied, whatever the agent does with the error."""


def _no_llm(_request: str) -> str:
    raise HostCallError("no LLM is configured for this step")


def _no_http(_request: str) -> str:
    raise HostCallError("network access is not configured for this step")


@dataclass(frozen=True, kw_only=True)
class HostCallbacks:
    """The outside world as the host functions reach it: JSON in, JSON out."""

    llm_complete: Callable[[str], str] = _no_llm
    http_fetch: Callable[[str], str] = _no_http


@dataclass(kw_only=True)
class RunContext:
    """The state of one step's host side."""

    limits: StepLimits
    callbacks: HostCallbacks = field(default_factory=HostCallbacks)
    config_json: str = "{}"
    counts: dict[str, int] = field(
        default_factory=lambda: {"llmCalls": 0, "networkRequests": 0, "fileOperations": 0}
    )
    files: dict[str, str] = field(default_factory=dict)
    stored_bytes: int = 0
    breach: LimitKind | None = None
    breach_detail: str = ""
    denied: str | None = None
    _log: list[str] = field(default_factory=list)
    _log_bytes: int = 0
    log_truncated: bool = False

    # -- the log (stdout, stderr and log()) --------------------------------------------------

    def append_log(self, text: str) -> None:
        """Keep ``text`` while under the log cap; then only mark the log as truncated."""
        room = self.limits.log_bytes - self._log_bytes
        data = text.encode("utf-8", "replace")
        if len(data) > room:
            data = data[: max(room, 0)]
            self.log_truncated = True
        if data:
            self._log.append(data.decode("utf-8", "ignore"))
            self._log_bytes += len(data)

    def capture(self, chunk: bytes) -> None:
        """The WASI stdout/stderr callback."""
        self.append_log(chunk.decode("utf-8", "replace"))

    @property
    def log(self) -> str:
        """Everything logged (up to the cap)."""
        return "".join(self._log)

    # -- counting ------------------------------------------------------------------------

    def _count(self, kind: LimitKind, limit: int) -> str | None:
        """Count one call of ``kind``; the refusal message when over ``limit``."""
        self.counts[kind.value] += 1
        if self.counts[kind.value] > limit:
            return self._breach(kind, f"{kind.value} limit of {limit} reached")
        return None

    def _breach(self, kind: LimitKind, message: str) -> str:
        if self.breach is None:
            self.breach, self.breach_detail = kind, message
        return message

    # -- host functions: each returns (ok, payload) ----------------------------------------

    def llm_complete(self, request: str) -> tuple[bool, str]:
        """Count, then ask the router."""
        refused = self._count(LimitKind.LLM_CALLS, self.limits.llm_calls)
        if refused:
            return False, refused
        return self._call(self.callbacks.llm_complete, request)

    def http_fetch(self, request: str) -> tuple[bool, str]:
        """Count, then fetch (the callback enforces the allowlist)."""
        refused = self._count(LimitKind.NETWORK_REQUESTS, self.limits.network_requests)
        if refused:
            return False, refused
        return self._call(self.callbacks.http_fetch, request)

    def _call(self, fn: Callable[[str], str], request: str) -> tuple[bool, str]:
        try:
            return True, fn(request)
        except NetworkDenied as exc:
            if self.denied is None:
                self.denied = str(exc)
            return False, str(exc)
        except HostCallError as exc:
            return False, str(exc)
        except Exception as exc:  # a bug in a callback must not cross into wasmtime
            return False, f"host error: {type(exc).__name__}: {exc}"

    def read_file(self, path: str) -> tuple[bool, str]:
        """A scratch file's text."""
        refused = self._count(LimitKind.FILE_OPERATIONS, self.limits.file_operations)
        if refused:
            return False, refused
        if path not in self.files:
            return False, f"no such file: {path}"
        return True, self.files[path]

    def write_file(self, path: str, data: str) -> tuple[bool, str]:
        """Create or replace a scratch file, within the storage quota."""
        refused = self._count(LimitKind.FILE_OPERATIONS, self.limits.file_operations)
        if refused:
            return False, refused
        if not path or len(path) > 1024:
            return False, "a file name is 1 to 1024 characters"
        size = len(data.encode("utf-8"))
        old = len(self.files.get(path, "").encode("utf-8"))
        if self.stored_bytes - old + size > self.limits.storage_bytes:
            return False, self._breach(
                LimitKind.STORAGE, f"storage limit of {self.limits.storage_bytes} bytes reached"
            )
        self.files[path] = data
        self.stored_bytes += size - old
        return True, ""

    def delete_file(self, path: str) -> tuple[bool, str]:
        """Remove a scratch file."""
        refused = self._count(LimitKind.FILE_OPERATIONS, self.limits.file_operations)
        if refused:
            return False, refused
        if path not in self.files:
            return False, f"no such file: {path}"
        self.stored_bytes -= len(self.files.pop(path).encode("utf-8"))
        return True, ""

    def list_files(self) -> tuple[bool, str]:
        """The scratch files' names, as a JSON array."""
        refused = self._count(LimitKind.FILE_OPERATIONS, self.limits.file_operations)
        if refused:
            return False, refused
        return True, json.dumps(sorted(self.files))
