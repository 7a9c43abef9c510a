"""The ``mock`` provider: deterministic answers for demos, tests and offline runs.

Every answer says what it is: the text starts with ``[mock]``, the provider is ``mock``, and the
usage is an estimate (``estimated=True``) at zero cost. The same request always gets the same
answer. A request asking for JSON gets a JSON object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from router.features import estimate_tokens
from router.types import ChatRequest, ChatResponse, StreamEvent, Usage

__all__ = ["MockProvider"]


class MockProvider:
    """Answers without any network."""

    kind = "mock"

    def __init__(self, name: str = "mock") -> None:
        self.name = name

    def answer(self, request: ChatRequest) -> str:
        """The deterministic answer to ``request``."""
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        digest = hashlib.sha256(request.text().encode()).hexdigest()[:8]
        if request.json:
            return json.dumps({"mock": True, "id": digest, "echo": last[:200]})
        return f"[mock {digest}] {last[:200]}"

    def _usage(self, request: ChatRequest, text: str) -> Usage:
        return Usage(
            input_tokens=estimate_tokens(request.text()),
            output_tokens=estimate_tokens(text),
            estimated=True,
        )

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        """Answer at once."""
        text = self.answer(request)
        return ChatResponse(
            text=text,
            provider=self.name,
            model=model,
            usage=self._usage(request, text),
            finish_reason="stop",
            response_id=f"mock-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
        )

    def stream(self, model: str, request: ChatRequest, *, timeout: float) -> Iterator[StreamEvent]:
        """The same answer, a word at a time."""
        text = self.answer(request)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield StreamEvent(text=word if i == 0 else " " + word)
        yield StreamEvent(
            done=True, usage=self._usage(request, text), finish_reason="stop", model=model
        )
