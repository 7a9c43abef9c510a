"""The API agents written in Python use: ``import agentflow`` inside the sandbox.

    from agentflow import llm, http, files, log

    def run(input: dict) -> dict:
        log("classifying", input["ticket"][:40])
        answer = llm.complete(prompt=f"Classify: {input['ticket']}")
        files.write("notes.txt", answer["text"])
        return {"label": answer["text"].strip()}

Every call goes through the host: LLM calls through the router, HTTP only to the agent's
allowlist, files only in the step's scratch space. Failures raise :class:`HostError`.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

from componentize_py_types import Err
from wit_world.imports import host

__all__ = ["HostError", "config", "files", "http", "llm", "log"]


class HostError(Exception):
    """The host refused or failed a call (limit reached, host not allowed, no such file...)."""


def _host(fn, *args):
    try:
        return fn(*args)
    except Err as exc:
        raise HostError(exc.value) from None


class _LLM:
    def complete(self, prompt=None, *, messages=None, **options):
        """A completion: ``{"text": ..., "model": ..., "usage": {...}}``."""
        request = dict(options)
        if messages is not None:
            request["messages"] = messages
        if prompt is not None:
            request["prompt"] = prompt
        return json.loads(_host(host.llm_complete, json.dumps(request)))


class _HTTP:
    def fetch(self, url, *, method="GET", headers=None, body=None):
        """``{"status", "headers", "body", "truncated"}``; only allowlisted hosts."""
        request = {"url": url, "method": method, "headers": headers or {}}
        if body is not None:
            request["body"] = body if isinstance(body, str) else json.dumps(body)
        return json.loads(_host(host.http_fetch, json.dumps(request)))


class _Files:
    def read(self, path):
        return _host(host.read_file, path)

    def write(self, path, data):
        _host(host.write_file, path, data)

    def delete(self, path):
        _host(host.delete_file, path)

    def list(self):
        return json.loads(_host(host.list_files))


def log(*parts, level="info"):
    """A line in the step's log."""
    host.log(level, " ".join(str(p) for p in parts))


def config():
    """The step's configuration: workflow, agent, execution, attempt, idempotency key."""
    return json.loads(host.config())


llm = _LLM()
http = _HTTP()
files = _Files()


# -- for the runtimes (app.py, agent_app.py), not for agents -----------------------------------


def _spin_sleep(seconds):
    # WASI's sleep blocks in the host, where neither the epoch deadline nor fuel reach it:
    # wait by spinning instead, so a sleeping agent still meets its timeout and CPU limit.
    end = time.monotonic() + max(0.0, float(seconds))
    while time.monotonic() < end:
        pass


def _install():
    """Make ``import agentflow`` work and ``time.sleep`` interruptible."""
    sys.modules["agentflow"] = sys.modules[__name__]
    time.sleep = _spin_sleep


_SIZE_OVERFLOWS = frozenset(
    {
        "cannot fit 'int' into an index-sized integer",
        "repeated string is too long",
        "repeated bytes are too long",
    }
)


def _call(entry, input_json):
    """Run an agent's ``run(input)``: JSON in and out, every failure as ``Err`` with its text."""
    if not callable(entry):
        raise Err("agent.py defines no run(input) function")
    try:
        return json.dumps(entry(json.loads(input_json)))
    except Err:
        raise
    except MemoryError:
        raise Err("MemoryError: the agent ran out of memory") from None
    except OverflowError as exc:
        # a size past what a 32-bit guest can address (2 GiB and up) never reaches malloc:
        # CPython refuses it as an OverflowError. It is beyond every memory limit all the same.
        if str(exc) not in _SIZE_OVERFLOWS:
            raise Err(traceback.format_exc(limit=8)) from None
        raise Err(
            "MemoryError: the agent ran out of memory (one allocation of 2 GiB or more, "
            f"past what the sandbox can address: {exc})"
        ) from None
    except BaseException:
        raise Err(traceback.format_exc(limit=8)) from None
