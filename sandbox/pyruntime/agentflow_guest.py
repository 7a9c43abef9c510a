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

from componentize_py_types import Err
from wit_world.imports import host

__all__ = ["HostError", "config", "files", "http", "llm", "log"]


class HostError(Exception):
    """The host refused or failed a call (limit reached, host not allowed, no such file...)."""


def _call(fn, *args):
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
        return json.loads(_call(host.llm_complete, json.dumps(request)))


class _HTTP:
    def fetch(self, url, *, method="GET", headers=None, body=None):
        """``{"status", "headers", "body", "truncated"}``; only allowlisted hosts."""
        request = {"url": url, "method": method, "headers": headers or {}}
        if body is not None:
            request["body"] = body if isinstance(body, str) else json.dumps(body)
        return json.loads(_call(host.http_fetch, json.dumps(request)))


class _Files:
    def read(self, path):
        return _call(host.read_file, path)

    def write(self, path, data):
        _call(host.write_file, path, data)

    def delete(self, path):
        _call(host.delete_file, path)

    def list(self):
        return json.loads(_call(host.list_files))


def log(*parts, level="info"):
    """A line in the step's log."""
    host.log(level, " ".join(str(p) for p in parts))


def config():
    """The step's configuration: workflow, agent, execution, attempt, idempotency key."""
    return json.loads(host.config())


llm = _LLM()
http = _HTTP()
files = _Files()
