"""An exact-match response cache.

Used only when the request asks for it (``cache: true``) or is deterministic (temperature 0).
The key covers the route (deployment and model), every message, the sampling parameters, the
tools, and the data-sensitivity scope, so an answer is never served across scopes. Entries
expire after ``ttl_seconds``; the least recently used go first beyond ``max_entries``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict

from router.types import ChatRequest, ChatResponse

__all__ = ["ResponseCache", "cacheable"]


def cacheable(request: ChatRequest) -> bool:
    """Whether ``request`` may be answered from the cache."""
    if request.cache is not None:
        return request.cache
    return request.temperature == 0


class ResponseCache:
    """In memory, thread-safe."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, ChatResponse]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(route: str, request: ChatRequest, scope: str) -> str:
        """The cache key of ``request`` on ``route`` in sensitivity ``scope``."""
        body = {
            "route": route,
            "scope": scope,
            "messages": [asdict(m) for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "json": request.json,
            "tools": list(request.tools),
            "stop": list(request.stop),
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> ChatResponse | None:
        """A fresh entry, or None."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, response: ChatResponse) -> None:
        """Keep ``response`` for the TTL."""
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, response)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
