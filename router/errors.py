"""The router's one exception hierarchy (it never imports agentflowd's).

Provider failures are classified once, by the provider client, into an :class:`ErrorKind`; the
router's retry loop decides what each kind means (retry, fall back, open the breaker, refuse).
The client also says how far the request got (:class:`Delivery`): that decides what a failed
attempt stays counted at in the budgets and the cost ledger.

::

    RouterError
    ├── ConfigError          the router's configuration cannot be used
    ├── ProviderError        one attempt failed; ``.kind``, ``.delivery``, ``.usage``
    ├── MidStreamError       a stream failed after text was handed on (no fallback)
    ├── LedgerError          an attempt could not be journaled, so it was not sent
    └── NoRoute              no route can take the request; ``.reasons``
        └── BudgetExceeded   every eligible route would cross a hard budget
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.types import Usage

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "Delivery",
    "ErrorKind",
    "LedgerError",
    "MidStreamError",
    "NoRoute",
    "ProviderError",
    "RouterError",
]


class RouterError(Exception):
    """Base of every router error."""


class ConfigError(RouterError):
    """The router's configuration (providers, prices, routing) cannot be used."""


class ErrorKind(enum.StrEnum):
    """What a failed provider call means, as the retry loop needs to know it."""

    RATE_LIMITED = "rate-limited"  # 429 with Retry-After (or rate headers): wait or move on
    OVERLOADED = (
        "overloaded"  # Anthropic 529 / overloaded_error: retry with backoff, then fall back
    )
    SERVER = "server"  # 5xx: retry with backoff, then fall back
    TIMEOUT = "timeout"  # no answer in time
    CONNECTION = "connection"  # refused, reset, DNS: retry, then fall back
    CONTEXT_TOO_LONG = "context-too-long"  # skip routes whose window is not larger
    CONTENT_POLICY = "content-policy"  # try another provider
    QUOTA_EXHAUSTED = "quota-exhausted"  # spent quota / spend limit: never retry; disable
    AUTH = "auth"  # 401/403: never retry; disable the deployment
    NOT_FOUND = "not-found"  # unknown model: never retry this deployment
    BAD_REQUEST = "bad-request"  # our request is wrong: no other route will like it more

    @property
    def retryable(self) -> bool:
        """Worth trying the same deployment again (after a wait)."""
        return self in _RETRYABLE

    @property
    def disables(self) -> bool:
        """The deployment cannot serve anything until an operator acts."""
        return self in (ErrorKind.QUOTA_EXHAUSTED, ErrorKind.AUTH)


_RETRYABLE = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
    }
)


class Delivery(enum.StrEnum):
    """How far a failed attempt's request got, as far as the client can tell; it decides what
    the attempt is billed at when the provider reported no usage (``Router._billed``).

    Conservative on purpose: only a request that certainly never left is free, or one the
    provider itself answered with an error (providers bill neither 4xx nor 5xx answers); a
    request that left and got no readable word back may have been answered, and billed, in full.
    """

    UNSENT = "unsent"  # the connection was never made: nothing reached the provider
    ANSWERED = "answered"  # the provider answered with an error: billed only what it reports
    UNKNOWN = "unknown"  # it left, and no readable answer came back: maybe billed in full


class ProviderError(RouterError):
    """A provider call failed; ``kind`` says how, ``retry_after`` (seconds) when it said so,
    ``delivery`` how far the request got (by default: a timeout or a dropped connection without
    an HTTP status is :attr:`Delivery.UNKNOWN`, anything else the provider's own answer)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        provider: str = "",
        model: str = "",
        usage: Usage | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        super().__init__(message)
        if delivery is None:
            silent = status is None and kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION)
            delivery = Delivery.UNKNOWN if silent else Delivery.ANSWERED
        self.delivery = delivery
        self.usage = usage  # what the failed call was billed for, when the provider said
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.provider = provider
        self.model = model

    def __str__(self) -> str:
        where = f"{self.provider}/{self.model}: " if self.provider else ""
        status = f"HTTP {self.status} " if self.status else ""
        return f"{where}{status}{self.kind.value}: {self.message}"


class MidStreamError(RouterError):
    """A stream failed after text was handed on: no fallback (it would repeat text)."""

    def __init__(self, cause: ProviderError, partial_text: str) -> None:
        super().__init__(f"stream failed after {len(partial_text)} characters: {cause}")
        self.cause = cause
        self.partial_text = partial_text


class LedgerError(RouterError):
    """The cost ledger could not journal an attempt before its request would have left, so the
    request was not sent: a call that cannot be accounted for is not paid for."""


class NoRoute(RouterError):
    """No route can take the request; ``reasons`` says why each candidate was dropped."""

    def __init__(self, message: str, reasons: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or {}


class BudgetExceeded(NoRoute):
    """Every eligible route would cross a hard budget (and no zero-cost route is eligible)."""
