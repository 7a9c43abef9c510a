"""The sandbox worker process: runs steps for :class:`sandbox.isolate.ProcessSandbox`.

    python -m sandbox.worker FD CACHE_DIR|-

It reads jobs from the socket ``FD`` and runs each with :func:`sandbox.runner.run_step` in its
own engine, exactly as in-process, except that LLM and HTTP calls are sent to the parent (which
owns the router, budgets and the HTTP policy) and answered there. The parent kills this process
when a step outlives its deadline, which is what bounds a component blocked inside a WASI wait.

Messages are JSON (``send_bytes``), plus one raw message for a component's bytes.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sandbox.context import HostCallbacks, HostCallError, NetworkDenied, RunContext
from sandbox.engine import SandboxEngine
from sandbox.errors import SandboxError
from sandbox.isolate import MAX_LOADED
from sandbox.limits import StepLimits
from sandbox.runner import deferred_free, run_step

__all__ = ["main"]


def _proxy(conn: Connection, kind: str) -> Any:
    def call(request: str) -> str:
        conn.send_bytes(json.dumps({"op": "call", "kind": kind, "request": request}).encode())
        reply = json.loads(conn.recv_bytes())
        if reply["ok"]:
            return str(reply["payload"])
        if reply.get("denied"):
            raise NetworkDenied(reply["payload"])
        raise HostCallError(reply["payload"])

    return call


def _job(
    conn: Connection, engine: SandboxEngine, loaded: OrderedDict[str, Any], job: dict[str, Any]
) -> None:
    key = job["key"]
    if job.get("wasm_follows"):
        wasm = conn.recv_bytes()
        loaded[key] = engine.load(wasm)
        engine.forget(key)  # the worker's own LRU below decides what stays loaded
    loaded.move_to_end(key)  # the host mirrors this order (ProcessSandbox's known)
    while len(loaded) > MAX_LOADED:
        loaded.popitem(last=False)
    component = loaded[key]
    ctx = RunContext(
        limits=StepLimits(**job["limits"]),
        callbacks=HostCallbacks(llm_complete=_proxy(conn, "llm"), http_fetch=_proxy(conn, "http")),
        config_json=job["config"],
    )
    args = tuple(job["args"]) if job.get("args") is not None else None
    report = run_step(engine, component, job["input"], ctx, args=args)
    outcome = report.outcome
    done = {
        "op": "done",
        "kind": outcome.kind.value,
        "output": outcome.output,
        "detail": outcome.detail,
        "limit": outcome.limit.value if outcome.limit else None,
        "elapsed": report.elapsed_seconds,
        "fuel": report.fuel_used,
        "counts": report.counts,
        "log": report.log,
        "log_truncated": report.log_truncated,
        "files": ctx.files,
    }
    conn.send_bytes(json.dumps(done).encode())


def main(argv: list[str] | None = None) -> int:
    """Serve jobs until the parent closes the socket."""
    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    cache = None if args[1] == "-" else Path(args[1])
    engine = SandboxEngine(cache)
    loaded: OrderedDict[str, Any] = OrderedDict()
    try:
        conn.send_bytes(b'{"op": "ready"}')
    except OSError:  # the host closed before we were ready: nothing to do
        engine.close()
        return 0
    try:
        while True:
            try:
                job = json.loads(conn.recv_bytes())
            except EOFError:
                return 0
            try:
                with deferred_free():  # the store is freed after the result is sent
                    _job(conn, engine, loaded, job)
            except SandboxError as exc:
                conn.send_bytes(json.dumps({"op": "error", "message": str(exc)}).encode())
    finally:
        engine.close()


if __name__ == "__main__":
    sys.exit(main())
