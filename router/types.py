"""The values the router passes around: requests, responses, stream events, usage.

Requests are OpenAI-shaped (a list of role/content messages) and normalized; each provider
client translates to its own wire format. Usage counts follow one convention whatever the
provider said: ``input_tokens`` is *all* input, cache reads and writes included (OpenAI's
``prompt_tokens`` already is; Anthropic's ``input_tokens`` is not, so its client adds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Message",
    "RateInfo",
    "StreamEvent",
    "Usage",
]


@dataclass(frozen=True)
class Message:
    """One turn: ``role`` is system, user, assistant or tool."""

    role: str
    content: str


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    """What an agent asks for, before a route is chosen."""

    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    json: bool = False  # ask for a JSON object (OpenAI response_format; a system hint elsewhere)
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI-shaped function tools
    stop: tuple[str, ...] = ()
    cache: bool | None = None  # None: cache only at temperature 0
    features: dict[str, Any] = field(default_factory=dict)  # declared (complexity, accuracy, ...)

    def text(self) -> str:
        """Every message's content, for estimates and features."""
        return "\n".join(m.content for m in self.messages)


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens of one call. ``input_tokens`` includes the cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0  # reasoning tokens included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute cache writes (Anthropic's default)
    cache_write_1h_tokens: int = 0
    estimated: bool = False  # from an estimate, not from the provider

    @property
    def uncached_input_tokens(self) -> int:
        """Input billed at the plain input rate."""
        cached = self.cache_read_tokens + self.cache_write_tokens + self.cache_write_1h_tokens
        return max(0, self.input_tokens - cached)


@dataclass(frozen=True, kw_only=True)
class RateInfo:
    """What a provider's rate-limit headers said (None: not sent)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None  # seconds from now
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


@dataclass(frozen=True, kw_only=True)
class ChatResponse:
    """A completed call."""

    text: str
    provider: str  # the deployment's name
    model: str  # the model the provider says answered
    usage: Usage
    finish_reason: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    response_id: str = ""
    rate: RateInfo | None = None


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """A piece of a streamed answer. The last event has ``done=True`` and the usage (None when
    the provider never sent it: the router then estimates and marks it)."""

    text: str = ""
    done: bool = False
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str = ""
    rate: RateInfo | None = None
