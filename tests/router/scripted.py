"""An in-memory provider that plays a script: answers and ProviderErrors, for the router loop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from router.errors import ErrorKind, ProviderError
from router.types import ChatRequest, ChatResponse, StreamEvent, Usage


@dataclass
class Scripted:
    """Each call takes the next item: a Usage (success), a ProviderError, or for streams a
    list of text pieces followed by a Usage / ProviderError. Empty script: a default success."""

    name: str
    kind: str = "openai"
    script: list[object] = field(default_factory=list)
    calls: list[tuple[str, ChatRequest]] = field(default_factory=list)

    def _next(self) -> object:
        return self.script.pop(0) if self.script else Usage(input_tokens=10, output_tokens=5)

    def complete(self, model: str, request: ChatRequest, *, timeout: float) -> ChatResponse:
        self.calls.append((model, request))
        item = self._next()
        if isinstance(item, ProviderError):
            raise item
        assert isinstance(item, Usage)
        return ChatResponse(
            text=f"{self.name}/{model}", provider=self.name, model=model, usage=item
        )

    def stream(self, model: str, request: ChatRequest, *, timeout: float) -> Iterator[StreamEvent]:
        self.calls.append((model, request))
        item = self._next()
        pieces = item if isinstance(item, list) else [item]
        for piece in pieces:
            if isinstance(piece, str):
                yield StreamEvent(text=piece)
            elif isinstance(piece, ProviderError):
                raise piece
            elif isinstance(piece, Usage) or piece is None:
                yield StreamEvent(done=True, usage=piece, model=model)
                return
        yield StreamEvent(done=True, usage=Usage(input_tokens=10, output_tokens=5), model=model)


def fault(
    kind: ErrorKind, retry_after: float | None = None, message: str = "scripted"
) -> ProviderError:
    return ProviderError(kind, message, retry_after=retry_after)
