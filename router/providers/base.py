"""What every provider client offers the router.

A client speaks one wire format over an ``httpx.Client`` it is given (tests give one with an
``httpx.MockTransport``; the daemon one shared pool). It makes exactly one attempt per call: no
retries, no fallbacks (the router's loop owns those), and it turns every failure into a
:class:`~router.errors.ProviderError` with its :class:`~router.errors.ErrorKind`. API keys go
in headers only: never in an error message, a log line or a repr.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from router.types import ChatRequest, ChatResponse, StreamEvent

__all__ = ["Provider"]


class Provider(Protocol):
    """One deployment: a provider endpoint with its credentials."""

    name: str  # the deployment's name in the config ("openai", "ollama-gpu1", ...)
    kind: str  # "openai" | "anthropic" | "local" | "mock"

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        """One non-streaming call; raises ProviderError."""
        ...

    def stream(self, model: str, request: ChatRequest, *, timeout: float) -> Iterator[StreamEvent]:
        """One streaming call: text events, then one ``done`` event. Raises ProviderError,
        before the first event or between events."""
        ...
