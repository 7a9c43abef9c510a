"""The OpenAI Chat Completions client; also the client of OpenAI-compatible local servers.

``POST {base_url}/chat/completions``. With ``kind="local"`` the same wire format reaches
Ollama, vLLM, llama.cpp and SGLang (``base_url`` such as ``http://127.0.0.1:11434/v1``); the
API key is then optional. Usage: ``prompt_tokens`` already includes the cached tokens, so it is
``input_tokens`` as it is. Streams always ask for ``stream_options.include_usage`` and take the
usage from whichever chunk carries it (LiteLLM #36168: a chunk with non-empty ``choices``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from router.errors import Delivery, ErrorKind
from router.providers.http import (
    CallContext,
    Secret,
    classify_openai_error,
    open_sse,
    openai_rate_info,
    post_json,
)
from router.types import ChatRequest, ChatResponse, RateInfo, StreamEvent, Usage

__all__ = [
    "OpenAIProvider",
    "OpenAIStreamState",
    "REASONING_PREFIXES",
    "build_openai_body",
    "parse_openai_response",
    "parse_openai_usage",
    "uses_max_completion_tokens",
]

# OpenAI reasoning models refuse ``max_tokens`` and want ``max_completion_tokens``.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def uses_max_completion_tokens(model: str, kind: str) -> bool:
    """Whether ``model`` on a deployment of ``kind`` needs ``max_completion_tokens``."""
    return kind == "openai" and model.startswith(REASONING_PREFIXES)


def build_openai_body(
    model: str, request: ChatRequest, *, stream: bool, kind: str = "openai"
) -> dict[str, Any]:
    """The JSON body of a chat completion for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        key = "max_completion_tokens" if uses_max_completion_tokens(model, kind) else "max_tokens"
        body[key] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [dict(tool) for tool in request.tools]
    if request.json:
        body["response_format"] = {"type": "json_object"}
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_openai_usage(usage: Mapping[str, Any]) -> Usage:
    """A ``usage`` object: prompt_tokens (cached included), cached_tokens, completion_tokens."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cache_read_tokens=_count(cached),
    )


def _content_text(content: Any) -> str:
    """``message.content``: a string, None, or (some servers) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, Mapping))
    return ""


def parse_openai_response(
    data: Mapping[str, Any], *, provider: str, model: str, rate: RateInfo | None = None
) -> ChatResponse:
    """A ``chat.completion`` object. Without a ``usage`` the usage is zero and marked
    ``estimated`` (the router replaces it with its own estimate)."""
    choices = data.get("choices") or []
    choice: Mapping[str, Any] = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message: Mapping[str, Any] = choice.get("message") or {}
    usage = data.get("usage")
    return ChatResponse(
        text=_content_text(message.get("content")),
        provider=provider,
        model=str(data.get("model") or model),
        usage=parse_openai_usage(usage) if isinstance(usage, Mapping) else Usage(estimated=True),
        finish_reason=choice.get("finish_reason"),
        tool_calls=tuple(message.get("tool_calls") or ()),
        response_id=str(data.get("id") or ""),
        rate=rate,
    )


@dataclass
class OpenAIStreamState:
    """What a stream has said so far; :meth:`feed` takes one decoded chunk."""

    usage: Usage | None = None
    finish_reason: str | None = None
    model: str = ""

    def feed(self, chunk: Mapping[str, Any]) -> str:
        """Record the chunk's usage, model and finish reason; return its text."""
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = parse_openai_usage(usage)
        if not self.model and chunk.get("model"):
            self.model = str(chunk["model"])
        text = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping):
                continue
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta")
            if isinstance(delta, Mapping) and choice.get("index", 0) == 0:
                text.append(_content_text(delta.get("content")))
        return "".join(text)


def _stream_error(chunk: Mapping[str, Any]) -> Any:
    """The error object inside a 200 stream (SGLang, vLLM), or None."""
    if chunk.get("error") is not None:
        return chunk
    if chunk.get("object") == "error":  # top-level vLLM-style ErrorResponse
        return chunk
    return None


class OpenAIProvider:
    """A deployment speaking OpenAI Chat Completions (``kind`` "openai" or "local")."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        client: httpx.Client,
        kind: str = "openai",
        organization: str | None = None,
        project: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.kind = kind
        self.base_url = base_url.rstrip("/")
        self._api_key = Secret(api_key)
        self._client = client
        self._organization = organization
        self._project = project
        self._clock = clock

    def __repr__(self) -> str:
        return f"OpenAIProvider(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        """Where the calls go."""
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._organization:
            headers["openai-organization"] = self._organization
        if self._project:
            headers["openai-project"] = self._project
        return headers

    def _context(self, model: str) -> CallContext:
        return CallContext(self.name, model, (self._api_key.reveal(),))

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        """One non-streaming call; raises ProviderError."""
        ctx = self._context(model)
        data, headers = post_json(
            self._client,
            self.url,
            headers=self._headers(),
            body=build_openai_body(model, request, stream=False, kind=self.kind),
            timeout=timeout,
            ctx=ctx,
            classify=classify_openai_error,
        )
        if not isinstance(data, Mapping):
            raise ctx.fail(
                ErrorKind.SERVER, "the answer is not a JSON object", delivery=Delivery.UNKNOWN
            )
        if "choices" not in data and _stream_error(data) is not None:
            raise ctx.error(classify_openai_error(None, data, headers))
        response = parse_openai_response(
            data, provider=self.name, model=model, rate=openai_rate_info(headers)
        )
        if response.finish_reason == "content_filter":
            raise ctx.fail(
                ErrorKind.CONTENT_POLICY,
                "the answer was withheld: content_filter",
                usage=response.usage,
            )
        return response

    def stream(self, model: str, request: ChatRequest, *, timeout: float) -> Iterator[StreamEvent]:
        """One streaming call: text events, then one ``done`` event; raises ProviderError."""
        ctx = self._context(model)
        state = OpenAIStreamState()
        finished = False
        with open_sse(
            self._client,
            self.url,
            headers=self._headers(),
            body=build_openai_body(model, request, stream=True, kind=self.kind),
            timeout=timeout,
            ctx=ctx,
            classify=classify_openai_error,
            clock=self._clock,
        ) as sse:
            for event in sse.events:
                if event.data.strip() == "[DONE]":
                    finished = True
                    break
                try:
                    chunk = json.loads(event.data)
                except ValueError:
                    raise ctx.fail(
                        ErrorKind.SERVER, "a stream chunk is not JSON", delivery=Delivery.UNKNOWN
                    ) from None
                if not isinstance(chunk, Mapping):
                    continue
                if _stream_error(chunk) is not None:
                    raise ctx.error(classify_openai_error(None, chunk, sse.headers))
                text = state.feed(chunk)
                if text:
                    yield StreamEvent(text=text)
            rate = openai_rate_info(sse.headers)
        if state.finish_reason == "content_filter":
            raise ctx.fail(
                ErrorKind.CONTENT_POLICY,
                "the answer was withheld: content_filter",
                usage=state.usage,
            )
        if not finished and state.finish_reason is None:
            raise ctx.fail(ErrorKind.CONNECTION, "the stream ended before [DONE]")
        yield StreamEvent(
            done=True,
            usage=state.usage,
            finish_reason=state.finish_reason,
            model=state.model or model,
            rate=rate,
        )
