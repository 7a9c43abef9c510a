"""The Anthropic Messages client: ``POST {base_url}/v1/messages``.

Requests arrive OpenAI-shaped and are translated: system messages become the top-level
``system``, ``max_tokens`` is always sent, ``stop`` becomes ``stop_sequences``, tools get an
``input_schema``. Anthropic's ``input_tokens`` excludes the cache reads and writes, so the
usage adds them (the router's convention: ``input_tokens`` is all input). Streams take the input
and cache counts from ``message_start`` and let a later ``message_delta`` override them (its
numbers are the final ones; LiteLLM #42663); ``output_tokens`` is cumulative, the last one wins.
An ``error`` event can arrive after HTTP 200, in the middle of a stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from router.errors import Delivery, ErrorKind
from router.providers.http import (
    CallContext,
    Secret,
    anthropic_rate_info,
    classify_anthropic_error,
    open_sse,
    post_json,
)
from router.types import ChatRequest, ChatResponse, RateInfo, StreamEvent, Usage

__all__ = [
    "AnthropicProvider",
    "AnthropicStreamState",
    "DEFAULT_MAX_TOKENS",
    "JSON_INSTRUCTION",
    "STOP_REASONS",
    "build_anthropic_body",
    "parse_anthropic_response",
    "parse_anthropic_usage",
    "translate_tool",
]

DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; this when the request has none
JSON_INSTRUCTION = (
    "Answer with a single JSON object only: no prose before or after it, no code fences."
)

# Anthropic stop_reason -> the OpenAI-style finish_reason the router reads (others pass as-is).
STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def translate_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic tool (one already Anthropic-shaped passes)."""
    if "input_schema" in tool:
        return dict(tool)
    function: Mapping[str, Any] = tool.get("function") or tool
    out: dict[str, Any] = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def build_anthropic_body(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of a Messages call for ``request``."""
    system = [m.content for m in request.messages if m.role == "system"]
    if request.json:
        system.append(JSON_INSTRUCTION)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens,
        "messages": [
            {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            for m in request.messages
            if m.role != "system"
        ],
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [translate_tool(tool) for tool in request.tools]
    if stream:
        body["stream"] = True
    return body


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_anthropic_usage(usage: Mapping[str, Any]) -> Usage:
    """Anthropic usage in the router's convention: input = uncached + cache writes + reads.

    Cache writes split by ``cache_creation`` (5-minute and 1-hour) when it is there; the split
    always sums to ``cache_creation_input_tokens`` (the 1-hour part is trusted, the rest is
    5-minute) so an inconsistent breakdown cannot lose or double tokens.
    """
    uncached = _count(usage.get("input_tokens")) or 0
    reads = _count(usage.get("cache_read_input_tokens")) or 0
    writes = _count(usage.get("cache_creation_input_tokens"))
    breakdown = usage.get("cache_creation")
    five = one_hour = None
    if isinstance(breakdown, Mapping):
        five = _count(breakdown.get("ephemeral_5m_input_tokens"))
        one_hour = _count(breakdown.get("ephemeral_1h_input_tokens"))
    if writes is None:
        writes = (five or 0) + (one_hour or 0)
    one_hour = min(one_hour or 0, writes)
    return Usage(
        input_tokens=uncached + writes + reads,
        output_tokens=_count(usage.get("output_tokens")) or 0,
        cache_read_tokens=reads,
        cache_write_tokens=writes - one_hour,
        cache_write_1h_tokens=one_hour,
    )


def _finish_reason(stop_reason: Any) -> str | None:
    if not stop_reason:
        return None
    return STOP_REASONS.get(str(stop_reason), str(stop_reason))


def _tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI-shaped tool call (arguments as a JSON string)."""
    return {
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {
            "name": str(block.get("name") or ""),
            "arguments": json.dumps(block.get("input") or {}),
        },
    }


def parse_anthropic_response(
    data: Mapping[str, Any], *, provider: str, model: str, rate: RateInfo | None = None
) -> ChatResponse:
    """A ``message`` object: text blocks joined, tool_use blocks as tool calls."""
    blocks = [b for b in data.get("content") or () if isinstance(b, Mapping)]
    usage = data.get("usage")
    return ChatResponse(
        text="".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text"),
        provider=provider,
        model=str(data.get("model") or model),
        usage=parse_anthropic_usage(usage) if isinstance(usage, Mapping) else Usage(estimated=True),
        finish_reason=_finish_reason(data.get("stop_reason")),
        tool_calls=tuple(_tool_call(b) for b in blocks if b.get("type") == "tool_use"),
        response_id=str(data.get("id") or ""),
        rate=rate,
    )


def _present(usage: Any) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if v is not None} if isinstance(usage, Mapping) else {}


@dataclass
class AnthropicStreamState:
    """What a stream has said so far; :meth:`feed` takes one decoded event."""

    usage_fields: dict[str, Any] = field(default_factory=dict)
    saw_usage: bool = False
    stop_reason: str | None = None
    model: str = ""
    stopped: bool = False

    def feed(self, event: Mapping[str, Any]) -> str:
        """Record the event's usage, model, stop reason; return its text (text deltas only)."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = str(message.get("model") or self.model)
            self._merge(message.get("usage"))
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return str(delta.get("text") or "")
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                self.stop_reason = str(delta["stop_reason"])
            self._merge(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def _merge(self, usage: Any) -> None:
        """Later numbers replace earlier ones (output is cumulative; final cache counts)."""
        if isinstance(usage, Mapping):
            self.saw_usage = True
            self.usage_fields.update(_present(usage))

    @property
    def usage(self) -> Usage | None:
        """The usage so far; None when the stream never carried any."""
        return parse_anthropic_usage(self.usage_fields) if self.saw_usage else None

    @property
    def finish_reason(self) -> str | None:
        """The stop reason as a finish reason."""
        return _finish_reason(self.stop_reason)


class AnthropicProvider:
    """A deployment speaking Anthropic Messages."""

    kind = "anthropic"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = "https://api.anthropic.com",
        api_key: str,
        client: httpx.Client,
        version: str = "2023-06-01",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._api_key = Secret(api_key)
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"AnthropicProvider(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        """Where the calls go."""
        return f"{self.base_url}/v1/messages"

    def _headers(self) -> dict[str, str]:
        return {
            "x-api-key": self._api_key.reveal(),
            "anthropic-version": self.version,
            "content-type": "application/json",
        }

    def _context(self, model: str) -> CallContext:
        return CallContext(self.name, model, (self._api_key.reveal(),))

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        """One non-streaming call; raises ProviderError."""
        ctx = self._context(model)
        data, headers = post_json(
            self._client,
            self.url,
            headers=self._headers(),
            body=build_anthropic_body(model, request, stream=False),
            timeout=timeout,
            ctx=ctx,
            classify=classify_anthropic_error,
        )
        if not isinstance(data, Mapping):
            raise ctx.fail(
                ErrorKind.SERVER, "the answer is not a JSON object", delivery=Delivery.UNKNOWN
            )
        if data.get("type") == "error":
            raise ctx.error(classify_anthropic_error(None, data, headers))
        rate = anthropic_rate_info(headers, datetime.now(UTC))
        response = parse_anthropic_response(data, provider=self.name, model=model, rate=rate)
        if data.get("stop_reason") == "refusal":
            raise ctx.fail(
                ErrorKind.CONTENT_POLICY,
                "the model refused: stop_reason refusal",
                usage=response.usage,
            )
        return response

    def stream(self, model: str, request: ChatRequest, *, timeout: float) -> Iterator[StreamEvent]:
        """One streaming call: text events, then one ``done`` event; raises ProviderError."""
        ctx = self._context(model)
        state = AnthropicStreamState()
        with open_sse(
            self._client,
            self.url,
            headers=self._headers(),
            body=build_anthropic_body(model, request, stream=True),
            timeout=timeout,
            ctx=ctx,
            classify=classify_anthropic_error,
            clock=self._clock,
        ) as sse:
            for event in sse.events:
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise ctx.fail(
                        ErrorKind.SERVER, "a stream event is not JSON", delivery=Delivery.UNKNOWN
                    ) from None
                if not isinstance(data, Mapping):
                    continue
                if data.get("type") == "error" or event.event == "error":
                    raise ctx.error(classify_anthropic_error(None, data, sse.headers))
                text = state.feed(data)
                if text:
                    yield StreamEvent(text=text)
                if state.stopped:
                    break
            rate = anthropic_rate_info(sse.headers, datetime.now(UTC))
        if state.stop_reason == "refusal":
            raise ctx.fail(
                ErrorKind.CONTENT_POLICY,
                "the model refused: stop_reason refusal",
                usage=state.usage,
            )
        if not state.stopped and state.stop_reason is None:
            raise ctx.fail(ErrorKind.CONNECTION, "the stream ended before message_stop")
        yield StreamEvent(
            done=True,
            usage=state.usage,
            finish_reason=state.finish_reason,
            model=state.model or model,
            rate=rate,
        )
