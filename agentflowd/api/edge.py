"""The API's edge: what every request meets before it is routed or authenticated.

:class:`BodyLimit` (ASGI middleware, outside the audit trail) holds three rules:

* **A body is at most 1 MiB, counted as it arrives.** A ``Content-Length`` over the limit is
  refused with 413 before a byte is read; a chunked body is counted chunk by chunk and refused
  at the first byte over. Reading the whole body first and measuring it after let two
  concurrent 300 MB uploads take the daemon's peak memory from 129 MiB to 1.2 GiB; now it
  moves by about 1 MiB: nothing holds more than the limit per request, whoever sends it (the
  limit applies before authentication).
* **JSON is nested at most 64 deep.** Python's parser recurses: a body of 100,000 ``[``
  raised RecursionError deep in a route (a plain-text 500), and a few hundred levels that
  parse can still fail later, in whatever walks the value. 64 is System.Text.Json's default;
  webhook payloads of GitHub or Stripe are under 10 deep. The count skips string contents;
  a body with at most 64 brackets costs two ``bytes.count``, a MiB of typical JSON a few
  milliseconds (less than ``json.loads`` of it), a MiB of hostile brackets a few tens.
* **A RecursionError that still escapes a route** answers 400, not 500.

Refusals carry the API's one error shape, ``{"error": {"code": "too_large" | "bad_request",
"message": ...}}``. The body is read before the route runs (at most the limit, then handed on
unchanged), so every route sees the rules whether or not it reads its body. :func:`allowed_methods`
serves the 405 of paths the webhook catch-all would otherwise swallow.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyLimit",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "allowed_methods",
    "method_not_allowed",
    "nested_deeper_than",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64

_KEEP = b'"[]{}'
_NOT_KEPT = bytes(b for b in range(256) if b not in _KEEP)
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1, +1, -1, -1 as signed bytes


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the brackets of ``body`` outside JSON strings nest deeper than ``limit``.

    Any body, JSON or not (text with deeply nested brackets outside quotes is refused too).
    Every step is a C loop over the bytes, so a MiB costs milliseconds:

    1. at most ``limit`` opening brackets in all: done;
    2. escapes go, as JSON reads them (escaped backslashes, then escaped quotes); then all but
       quotes and brackets; then what is between quotes — the brackets outside strings remain;
    3. more than ``limit`` brackets opened in a row are nested deeper; else innermost pairs
       ``()`` are removed, up to ``limit`` times: a pair still left is nested deeper, nothing
       left means no deeper. Shapes where that converges slowly (and brackets never closed,
       near the limit) are counted exactly instead: at worst ~40 ms for a MiB of brackets.

    Typical JSON of 1 MiB costs about 5 ms, one of a few KiB microseconds."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    text = body
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(text.translate(None, _NOT_KEPT).split(b'"')[0::2])
    rest = outside.translate(_PARENS)
    if rest.count(b"(") <= limit:
        return False
    if b"(" * (limit + 1) in rest:
        return True  # that many opened in a row (a run also makes the passes below slow)
    passes = 0
    while passes < limit:
        shorter = rest.replace(b"()", b"")
        removed = len(rest) - len(shorter)
        if removed == 0:
            break
        rest, passes = shorter, passes + 1
        if removed * 4 < len(rest):  # slow progress (each pass costs a scan): count instead
            return _deepest(outside) > limit
    if b"()" in rest:
        return True  # a pair of height limit + 1
    unclosed = rest.count(b"(")
    if unclosed + passes <= limit or unclosed > limit:
        return unclosed > limit
    return _deepest(outside) > limit  # brackets never closed, near the limit


def _deepest(brackets: bytes) -> int:
    """The greatest depth of a string of brackets (one C loop, ~30 ms per million)."""
    return max(accumulate(array("b", brackets.translate(_STEPS))))


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = _error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


class BodyLimit:
    """ASGI middleware: bodies of at most ``max_bytes`` and JSON of at most ``max_depth``
    levels, enforced while the body arrives; a stray RecursionError answers 400."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def _too_large(self) -> str:
        size = (
            f"{self.max_bytes // (1024 * 1024)} MiB"
            if self.max_bytes % (1024 * 1024) == 0
            else f"{self.max_bytes} bytes"
        )
        return f"the body is over {size}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        declared = int(length) if length is not None and length.strip().isdigit() else None
        if declared is not None and declared > self.max_bytes:
            await _answer(send, 413, "too_large", self._too_large())  # nothing read
            return
        if declared or _header(scope, b"transfer-encoding") is not None:
            body = await self._read(receive, send)
            if body is None:
                return  # refused, or the client left
            if nested_deeper_than(body, self.max_depth):
                await _answer(
                    send,
                    400,
                    "bad_request",
                    f"the body is nested more than {self.max_depth} levels deep",
                )
                return
            receive = _replay(body, receive)
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except RecursionError:
            if started:
                raise
            log.warning("%s %s: RecursionError answered 400", scope["method"], scope["path"])
            await _answer(send, 400, "bad_request", "the request is nested too deeply")

    async def _read(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once it is refused (413 sent) or the client has gone."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # http.disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(send, 413, "too_large", self._too_large())
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` whole, then passes on (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(app: Any, scope: Scope, *, besides: object) -> list[str]:
    """The methods some route of ``app`` other than ``besides`` (the webhook catch-all, or the
    router holding it) takes at the path of ``scope``, sorted; empty when none has the path.

    Each method is put to the router's own matching, so included routers and their prefixes
    count as they do for a real request; nothing runs."""
    found: list[str] = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "method": method,
        }
        for route in app.router.routes:
            if route is besides or getattr(route, "original_router", None) is besides:
                continue
            match, _ = route.matches(probe)
            if match is Match.FULL:
                found.append(method)
                break
    return found


def method_not_allowed(method: str, allowed: Sequence[str]) -> JSONResponse:
    """405 with ``Allow`` and the API's error shape."""
    return JSONResponse(
        {
            "error": {
                "code": "method_not_allowed",
                "message": f"{method} is not allowed here; use {', '.join(allowed)}",
            }
        },
        status_code=405,
        headers={"Allow": ", ".join(allowed)},
    )
