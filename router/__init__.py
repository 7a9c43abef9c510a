"""LLM routing as a library (it never imports agentflowd).

Built by the router issue: provider clients over httpx, compiled routing conditions, strategies,
fallbacks, circuit breakers, rate limits, reservation budgets, a response cache and a price book.
"""

from __future__ import annotations

__all__: list[str] = []
