"""LLM routing as a library (it never imports agentflowd).

:class:`Router` sends each call to a deployment chosen by a compiled :class:`RoutingPolicy`
(conditions, hard filters, a strategy), with one retry loop for every failure, circuit breakers,
reservation budgets, an exact-match cache and exact costs from a :class:`PriceBook`; every
attempt becomes a :class:`CostRecord` in a :class:`Ledger`, journaled before its request
leaves. Provider clients speak the OpenAI Chat Completions and Anthropic Messages APIs over
httpx; ``mock`` answers offline.

Importing this package is cheap: httpx, genai-prices and the clients load when first used.
"""

from __future__ import annotations

from router.budget import BudgetLimit, Budgets
from router.errors import (
    BudgetExceeded,
    ConfigError,
    Delivery,
    ErrorKind,
    LedgerError,
    MidStreamError,
    NoRoute,
    ProviderError,
    RouterError,
)
from router.ledger import CostRecord, CostState, Ledger, MemoryLedger
from router.policy import budget_limits, policy_for_agent
from router.pricing import PriceBook, Rates
from router.router import CallContext, Routed, Router
from router.routing import Decision, Route, RoutingPolicy
from router.types import ChatRequest, ChatResponse, Message, StreamEvent, Usage

__all__ = [
    "BudgetExceeded",
    "BudgetLimit",
    "Budgets",
    "CallContext",
    "ChatRequest",
    "ChatResponse",
    "ConfigError",
    "CostRecord",
    "CostState",
    "Decision",
    "Delivery",
    "ErrorKind",
    "Ledger",
    "LedgerError",
    "MemoryLedger",
    "Message",
    "MidStreamError",
    "NoRoute",
    "PriceBook",
    "ProviderError",
    "Rates",
    "Route",
    "Routed",
    "Router",
    "RouterError",
    "RoutingPolicy",
    "StreamEvent",
    "Usage",
    "budget_limits",
    "policy_for_agent",
]
