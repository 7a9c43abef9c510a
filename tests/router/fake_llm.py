"""A fake LLM server speaking the real wire formats (OpenAI Chat Completions, Anthropic Messages).

A :class:`FakeLLM` holds a queue of :class:`Reply` scripts; each request takes the next one
(an empty queue answers ``default``: "ok"). A reply is neutral: the same ``Reply`` renders as
an OpenAI answer on ``.../chat/completions`` and as an Anthropic one on ``.../messages``, with
each provider's own status codes, bodies, headers and stream framing. Every request is recorded
(path, lower-cased headers, parsed JSON body) so tests can assert what was sent.

Two ways in:

* ``httpx.Client(transport=fake.transport())``: in-process, via ``httpx.MockTransport``;
  transport faults raise httpx's own exceptions (ReadError, ConnectError, ReadTimeout).
* ``with serve_fake(fake) as url:``: a real HTTP/1.1 server on 127.0.0.1 (keep-alive,
  Content-Length) for benchmarks; ``OpenAIProvider(base_url=f"{url}/v1")`` and
  ``AnthropicProvider(base_url=url)``. Transport faults close the socket (reset) or hold the
  request until the client gives up (timeout).

Scripts are built with the functions below: :func:`answer`, :func:`rate_limited`,
:func:`quota_exhausted`, :func:`overloaded`, :func:`server_error`, :func:`context_too_long`,
:func:`prompt_filtered`, :func:`content_filtered`, :func:`auth_failed`,
:func:`model_not_found`, :func:`connection_reset`, :func:`connect_refused`,
:func:`read_timeout`, :func:`error_mid_stream`, :func:`dropped_mid_stream`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from router.types import Usage

__all__ = [
    "CONTEXT_BODIES",
    "DEFAULT_USAGE",
    "FakeLLM",
    "Fault",
    "Recorded",
    "Rendered",
    "Reply",
    "answer",
    "auth_failed",
    "connect_refused",
    "connection_reset",
    "content_filtered",
    "context_too_long",
    "dropped_mid_stream",
    "error_mid_stream",
    "model_not_found",
    "overloaded",
    "prompt_filtered",
    "quota_exhausted",
    "rate_limited",
    "read_timeout",
    "serve_fake",
    "server_error",
]

DEFAULT_USAGE = Usage(input_tokens=12, output_tokens=3)
Headers = tuple[tuple[str, str], ...]
Transport = Literal["reset", "refused", "timeout"]
StreamUsage = Literal["final", "on_choice", "missing"]


@dataclass(frozen=True, kw_only=True)
class Fault:
    """An HTTP error answer, as each provider would word it."""

    status: int
    message: str
    openai_type: str = "invalid_request_error"
    openai_code: str | int | None = None
    openai_body: dict[str, Any] | None = None  # the exact body (vLLM, llama.cpp shapes)
    anthropic_status: int | None = None  # when it differs from ``status``
    anthropic_type: str = "api_error"
    anthropic_message: str | None = None
    anthropic_details: dict[str, Any] | None = None
    headers: Headers = ()
    echo_key: bool = False  # append the API key the request carried (a leak test)

    def openai(self, key: str) -> tuple[int, dict[str, Any]]:
        """Status and body on the OpenAI wire."""
        if self.openai_body is not None:
            return self.status, self.openai_body
        error = {
            "message": self._text(self.message, key),
            "type": self.openai_type,
            "param": None,
            "code": self.openai_code,
        }
        return self.status, {"error": error}

    def anthropic(self, key: str) -> tuple[int, dict[str, Any]]:
        """Status and body on the Anthropic wire."""
        error: dict[str, Any] = {
            "type": self.anthropic_type,
            "message": self._text(self.anthropic_message or self.message, key),
        }
        if self.anthropic_details is not None:
            error["details"] = self.anthropic_details
        body = {"type": "error", "error": error, "request_id": "req_fake"}
        return self.anthropic_status or self.status, body

    def _text(self, message: str, key: str) -> str:
        return f"{message} (key: {key})" if self.echo_key else message


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer. Defaults: HTTP 200, text "ok", :data:`DEFAULT_USAGE`."""

    text: str = "ok"
    usage: Usage | None = DEFAULT_USAGE  # router convention: input includes cache reads/writes
    finish: str = "stop"  # stop | length | tool_calls | content_filter (Anthropic: refusal)
    model: str | None = None  # None: echo the requested model
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, arguments)
    chunks: tuple[str, ...] | None = None  # stream pieces; None: the text word by word
    stream_usage: StreamUsage = "final"  # OpenAI: own chunk, on the finish chunk, or never
    anthropic_start_usage: Usage | None = None  # message_start differs; message_delta is final
    headers: Headers = ()  # extra response headers (rate limits, ...)
    fault: Fault | None = None  # an HTTP error instead of an answer
    transport: Transport | None = None  # fail below HTTP instead of answering
    stream_fault: Fault | None = None  # streams: an error event after the chunks
    drop_stream: bool = False  # streams: the connection drops after the chunks

    def pieces(self) -> tuple[str, ...]:
        """The stream's text pieces (they join back to ``text``)."""
        if self.chunks is not None:
            return self.chunks
        return tuple(re.findall(r"\s*\S+|\s+$", self.text)) or ("",)


@dataclass(frozen=True)
class Recorded:
    """A request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    peer: str = ""  # the client's host:port on the loopback server ("" in-process)

    @property
    def stream(self) -> bool:
        """Whether it asked for a stream."""
        return bool(self.body.get("stream"))


@dataclass(frozen=True)
class Rendered:
    """A reply on one wire: what to send, and how it ends."""

    status: int = 200
    headers: Headers = ()
    chunks: tuple[bytes, ...] = ()
    transport: Transport | None = None
    drop: bool = False


@dataclass
class FakeLLM:
    """A scripted LLM endpoint (both wire formats); records every request."""

    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def push(self, *replies: Reply) -> None:
        """Queue more replies."""
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self) -> Reply:
        """The next scripted reply, or the default when the script ran out."""
        with self._lock:
            return self.replies.pop(0) if self.replies else self.default

    def respond(
        self, path: str, headers: Mapping[str, str], raw: bytes, peer: str = ""
    ) -> Rendered:
        """Record one request and render the next reply for its path."""
        body = json.loads(raw) if raw else {}
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append(Recorded(path, lowered, body, peer))
        reply = self.next_reply()
        model = str(body.get("model") or "fake-model")
        if path.endswith("/chat/completions"):
            key = lowered.get("authorization", "").removeprefix("Bearer ")
            return _render_openai(reply, model, body, key, len(self.requests))
        if path.endswith("/messages"):
            return _render_anthropic(reply, model, body, lowered.get("x-api-key", ""))
        return _json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def handler(self, request: httpx.Request) -> httpx.Response:
        """An ``httpx.MockTransport`` handler."""
        out = self.respond(request.url.path, request.headers, request.read())
        if out.transport is not None:
            raise _TRANSPORT_ERRORS[out.transport](f"fake {out.transport}", request=request)
        content: bytes | Iterator[bytes] = b"".join(out.chunks)
        if out.drop:
            content = _then_drop(out.chunks, request)
        elif len(out.chunks) > 1:
            content = iter(out.chunks)
        return httpx.Response(out.status, headers=list(out.headers), content=content)

    def transport(self) -> httpx.MockTransport:
        """The fake as an httpx transport."""
        return httpx.MockTransport(self.handler)


_TRANSPORT_ERRORS: Mapping[Transport, type[httpx.TransportError]] = {
    "reset": httpx.ReadError,
    "refused": httpx.ConnectError,
    "timeout": httpx.ReadTimeout,
}


def _then_drop(chunks: Iterable[bytes], request: httpx.Request) -> Iterator[bytes]:
    yield from chunks
    raise httpx.ReadError("fake: connection reset by peer", request=request)


def _json(status: int, body: Any, headers: Headers = ()) -> Rendered:
    return Rendered(
        status, (("content-type", "application/json"), *headers), (json.dumps(body).encode(),)
    )


def _sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


_SSE_HEADERS: Headers = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))


# --- OpenAI ---------------------------------------------------------------------------------


def _openai_usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    return out


def _openai_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(reply.tool_calls)
    ]


def _render_openai(reply: Reply, model: str, body: Mapping[str, Any], key: str, n: int) -> Rendered:
    if reply.transport is not None:
        return Rendered(transport=reply.transport)
    if reply.fault is not None:
        status, error = reply.fault.openai(key)
        return _json(status, error, reply.fault.headers)
    model = reply.model or model
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = _openai_tool_calls(reply)
        completion: dict[str, Any] = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish}],
        }
        if reply.usage is not None:
            completion["usage"] = _openai_usage(reply.usage)
        return _json(200, completion, reply.headers)
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) and reply.usage is not None
    return Rendered(
        200,
        (*_SSE_HEADERS, *reply.headers),
        tuple(_openai_stream(reply, model, n, include_usage, key)),
        drop=reply.drop_stream,
    )


def _openai_stream(
    reply: Reply, model: str, n: int, include_usage: bool, key: str
) -> Iterator[bytes]:
    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
        }
        if include_usage:
            data["usage"] = usage
        return _sse(data)

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
    for piece in reply.pieces():
        yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    if reply.stream_fault is not None:
        _, error = reply.stream_fault.openai(key)
        if "error" not in error:  # vLLM-style top-level objects travel wrapped
            error = {"error": error}
        yield _sse(error)
        return
    if reply.drop_stream:
        return
    usage = _openai_usage(reply.usage) if reply.usage is not None else None
    on_choice = reply.stream_usage == "on_choice"
    finish = [{"index": 0, "delta": {}, "finish_reason": reply.finish}]
    yield chunk(finish, usage if on_choice else None)
    if reply.stream_usage == "final":
        yield chunk([], usage)
    yield _sse("[DONE]")


# --- Anthropic ------------------------------------------------------------------------------

_ANTHROPIC_STOPS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _anthropic_usage(usage: Usage) -> dict[str, Any]:
    writes = usage.cache_write_tokens + usage.cache_write_1h_tokens
    return {
        "input_tokens": usage.uncached_input_tokens,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


def _anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    blocks.extend(
        {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(reply.tool_calls)
    )
    return blocks


def _render_anthropic(reply: Reply, model: str, body: Mapping[str, Any], key: str) -> Rendered:
    if reply.transport is not None:
        return Rendered(transport=reply.transport)
    if reply.fault is not None:
        status, error = reply.fault.anthropic(key)
        return _json(status, error, reply.fault.headers)
    model = reply.model or model
    if not body.get("stream"):
        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": _anthropic_blocks(reply),
            "stop_reason": _ANTHROPIC_STOPS.get(reply.finish, reply.finish),
            "stop_sequence": None,
        }
        if reply.usage is not None:
            message["usage"] = _anthropic_usage(reply.usage)
        return _json(200, message, reply.headers)
    return Rendered(
        200,
        (*_SSE_HEADERS, *reply.headers),
        tuple(_anthropic_stream(reply, model, key)),
        drop=reply.drop_stream,
    )


def _anthropic_stream(reply: Reply, model: str, key: str) -> Iterator[bytes]:
    start_usage = reply.anthropic_start_usage or reply.usage
    message: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if start_usage is not None:
        message["usage"] = {**_anthropic_usage(start_usage), "output_tokens": 1}
    yield _sse({"type": "message_start", "message": message}, "message_start")
    text_block = {"type": "text", "text": ""}
    start = {"type": "content_block_start", "index": 0, "content_block": text_block}
    yield _sse(start, "content_block_start")
    yield _sse({"type": "ping"}, "ping")
    for piece in reply.pieces():
        text_delta = {"type": "text_delta", "text": piece}
        delta = {"type": "content_block_delta", "index": 0, "delta": text_delta}
        yield _sse(delta, "content_block_delta")
    if reply.stream_fault is not None:
        _, error = reply.stream_fault.anthropic(key)
        yield _sse(error, "error")
        return
    if reply.drop_stream:
        return
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    for i, (name, args) in enumerate(reply.tool_calls, start=1):
        tool = {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {}}
        start = {"type": "content_block_start", "index": i, "content_block": tool}
        yield _sse(start, "content_block_start")
        partial = {"type": "input_json_delta", "partial_json": json.dumps(args)}
        delta = {"type": "content_block_delta", "index": i, "delta": partial}
        yield _sse(delta, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": i}, "content_block_stop")
    stop = {"stop_reason": _ANTHROPIC_STOPS.get(reply.finish, reply.finish)}
    end: dict[str, Any] = {"type": "message_delta", "delta": {**stop, "stop_sequence": None}}
    if reply.usage is not None:
        final = _anthropic_usage(reply.usage)
        if reply.anthropic_start_usage is None:
            end["usage"] = {"output_tokens": final["output_tokens"]}
        else:  # the final top-level numbers (server tools, LiteLLM #42663)
            final.pop("service_tier")
            end["usage"] = final
    yield _sse(end, "message_delta")
    yield _sse({"type": "message_stop"}, "message_stop")


# --- scripts --------------------------------------------------------------------------------


def answer(text: str = "ok", **kw: Any) -> Reply:
    """A successful answer (any :class:`Reply` field as a keyword)."""
    return Reply(text=text, **kw)


def rate_limited(
    *, retry_after: str | None = "1", retry_after_ms: str | None = None, headers: Headers = ()
) -> Reply:
    """429 rate limited, with Retry-After and/or retry-after-ms (strings, as sent)."""
    extra: list[tuple[str, str]] = list(headers)
    if retry_after is not None:
        extra.append(("retry-after", retry_after))
    if retry_after_ms is not None:
        extra.append(("retry-after-ms", retry_after_ms))
    fault = Fault(
        status=429,
        message="Rate limit reached for requests. Please try again in 1s.",
        openai_type="requests",
        openai_code="rate_limit_exceeded",
        anthropic_type="rate_limit_error",
        anthropic_message="Number of requests has exceeded your per-minute rate limit.",
        headers=tuple(extra),
    )
    return Reply(fault=fault)


def quota_exhausted() -> Reply:
    """OpenAI 429 insufficient_quota; Anthropic 429 enforced_spend_limit_reached."""
    fault = Fault(
        status=429,
        message="You exceeded your current quota, please check your plan and billing details.",
        openai_type="insufficient_quota",
        openai_code="insufficient_quota",
        anthropic_type="rate_limit_error",
        anthropic_message="You have reached your specified workspace API usage limits.",
        anthropic_details={"error_code": "enforced_spend_limit_reached"},
    )
    return Reply(fault=fault)


def overloaded() -> Reply:
    """Anthropic 529 overloaded_error; OpenAI 503."""
    fault = Fault(
        status=503,
        message="The server is overloaded or not ready yet.",
        openai_type="server_error",
        anthropic_status=529,
        anthropic_type="overloaded_error",
        anthropic_message="Overloaded",
    )
    return Reply(fault=fault)


def server_error(status: int = 500) -> Reply:
    """A 5xx (500, 502, 503, 504) in each provider's words."""
    fault = Fault(
        status=status,
        message="The server had an error while processing your request.",
        openai_type="server_error",
        anthropic_type="api_error",
        anthropic_message="Internal server error",
    )
    return Reply(fault=fault)


# Context-window overflows, as each OpenAI-compatible backend words them: (status, body).
CONTEXT_BODIES: Mapping[str, tuple[int, dict[str, Any]]] = {
    "openai": (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, "
                "your messages resulted in 130001 tokens. Please reduce the length of the "
                "messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    ),
    "vllm": (
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 4096 tokens. However, you "
            "requested 5000 tokens (4000 in the messages, 1000 in the completion). Please "
            "reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
    ),
    "sglang": (
        400,
        {
            "object": "error",
            "message": "The input (5000 tokens) is longer than the model's context length "
            "(4096 tokens).",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
    ),
    "llamacpp": (
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
            }
        },
    ),
    "ollama": (
        500,
        {"error": {"message": "input length exceeds the context length", "type": "api_error"}},
    ),
}


def context_too_long(wording: str = "openai") -> Reply:
    """400 context too long in one backend's words (see :data:`CONTEXT_BODIES`); on the
    Anthropic wire always Anthropic's own ("prompt is too long")."""
    status, body = CONTEXT_BODIES[wording]
    fault = Fault(
        status=status,
        message="context too long",
        openai_body=body,
        anthropic_status=400,
        anthropic_type="invalid_request_error",
        anthropic_message="prompt is too long: 210000 tokens > 200000 maximum",
    )
    return Reply(fault=fault)


def prompt_filtered() -> Reply:
    """Azure's 400 content_filter on the prompt (Anthropic has no such answer: a 400)."""
    fault = Fault(
        status=400,
        message="The response was filtered due to the prompt triggering content management policy.",
        openai_type="",
        openai_code="content_filter",
        anthropic_type="invalid_request_error",
    )
    return Reply(fault=fault)


def content_filtered(text: str = "") -> Reply:
    """A 200 whose answer was withheld: finish_reason content_filter / stop_reason refusal."""
    return Reply(text=text, finish="content_filter")


def auth_failed(*, echo_key: bool = False) -> Reply:
    """401 (optionally echoing the key it got, as careless servers do)."""
    fault = Fault(
        status=401,
        message="Incorrect API key provided.",
        openai_code="invalid_api_key",
        anthropic_type="authentication_error",
        anthropic_message="invalid x-api-key",
        echo_key=echo_key,
    )
    return Reply(fault=fault)


def model_not_found() -> Reply:
    """404 unknown model."""
    fault = Fault(
        status=404,
        message="The model `nope` does not exist or you do not have access to it.",
        openai_code="model_not_found",
        anthropic_type="not_found_error",
        anthropic_message="model: nope",
    )
    return Reply(fault=fault)


def connection_reset() -> Reply:
    """The connection is reset before an answer (httpx.ReadError)."""
    return Reply(transport="reset")


def connect_refused() -> Reply:
    """The connection is refused (httpx.ConnectError; a reset on the loopback server)."""
    return Reply(transport="refused")


def read_timeout() -> Reply:
    """No answer in time (httpx.ReadTimeout; the loopback server holds the request)."""
    return Reply(transport="timeout")


def error_mid_stream(chunks: tuple[str, ...] = ("Hel", "lo"), fault: Fault | None = None) -> Reply:
    """A 200 stream with some text, then an error inside the stream: Anthropic's ``error``
    event, or SGLang's error object. Default fault: overloaded."""
    reply_fault = fault or overloaded().fault
    return Reply(text="".join(chunks), chunks=chunks, stream_fault=reply_fault)


def dropped_mid_stream(chunks: tuple[str, ...] = ("Hel", "lo")) -> Reply:
    """A 200 stream with some text, then the connection drops."""
    return Reply(text="".join(chunks), chunks=chunks, drop_stream=True)


# --- loopback server ------------------------------------------------------------------------


def _handler_class(fake: FakeLLM, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: httpx reuses connections
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
        timeout = 30  # an idle kept-alive connection is closed after this

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            peer = "{}:{}".format(*self.client_address)
            out = fake.respond(self.path, dict(self.headers.items()), raw, peer)
            if out.transport is not None:
                if out.transport == "timeout":
                    stop.wait(10)
                self.close_connection = True
                return
            body = b"".join(out.chunks)
            self.send_response(out.status)
            for name, value in out.headers:
                self.send_header(name, value)
            # a dropped stream promises one byte more than it sends, then closes
            self.send_header("Content-Length", str(len(body) + (1 if out.drop else 0)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if out.drop:
                self.close_connection = True

    return Handler


@contextmanager
def serve_fake(fake: FakeLLM) -> Iterator[str]:
    """Serve ``fake`` over HTTP/1.1 on 127.0.0.1 (a free port); yields its root URL."""
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(fake, stop))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
