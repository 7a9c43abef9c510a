"""Shared HTTP plumbing of the provider clients: SSE lines, rate headers, error classification.

The parsers and classifiers are pure functions of status, headers and body, so every row of
the classification tables is unit-tested without a network. :func:`post_json` and
:func:`open_sse` are the only I/O: one attempt, no retries, every failure a
:class:`~router.errors.ProviderError`.

Classification follows ``shared/research/router.md`` section 3: OpenAI-shaped bodies
(``{"error": {message, type, param, code}}``, also vLLM/SGLang's top-level ``{"object":
"error", ...}`` and Ollama's ``{"error": "text"}``) and Anthropic-shaped ones (``{"type":
"error", "error": {type, message}}``). Context-window overflows are matched by each backend's
own wording (LiteLLM #10793: an unmapped SGLang string silently disabled the fallback).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from router.errors import Delivery, ErrorKind, ProviderError
from router.types import RateInfo

__all__ = [
    "CONTEXT_WORDINGS",
    "CallContext",
    "Classified",
    "Classifier",
    "MAX_MESSAGE_CHARS",
    "SSEEvent",
    "SSEStream",
    "Secret",
    "anthropic_rate_info",
    "classify_anthropic_error",
    "classify_openai_error",
    "classify_transport_error",
    "iter_sse",
    "open_sse",
    "openai_rate_info",
    "parse_body",
    "parse_duration",
    "parse_retry_after",
    "parse_rfc3339_delay",
    "post_json",
    "redact",
]

MAX_MESSAGE_CHARS = 500  # a provider's own message, as kept in a ProviderError


# --- secrets --------------------------------------------------------------------------------


class Secret:
    """An API key that never shows itself in a repr, a str or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        """The key, for a request header only."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret(None)"

    __str__ = __repr__


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced (servers may echo a wrong key back)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


# --- SSE ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event:`` name ("" when unnamed) and its joined data."""

    event: str
    data: str


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events from SSE lines (without line endings): a blank line ends an event; comments
    (``:``), ``id:`` and ``retry:`` are skipped; an unterminated last event is still given."""
    event = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield SSEEvent(event, "\n".join(data))


# --- durations and rate headers -------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
# seconds per unit, as a fraction (dividing keeps "12ms" == 0.012 exactly)
_UNITS: Mapping[str, tuple[float, float]] = {
    "ns": (1.0, 1e9),
    "us": (1.0, 1e6),
    "µs": (1.0, 1e6),
    "ms": (1.0, 1e3),
    "s": (1.0, 1.0),
    "m": (60.0, 1.0),
    "h": (3600.0, 1.0),
}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``20ms``, ``1s``, ``0.5s``, ``1h2m``) or a
    bare number of seconds; None when it is neither."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, end = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != end:
            return None
        times, per = _UNITS[match.group(2)]
        total += float(match.group(1)) * times / per
        end = match.end()
    return total if end and end == len(text) else None


def parse_rfc3339_delay(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` until an RFC 3339 instant (never negative); None if unparsable."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait a response asked for: ``retry-after-ms`` (milliseconds), else ``retry-after``
    (seconds or an HTTP date); None when neither is there or usable."""
    h = httpx.Headers(headers)
    millis = h.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = h.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _int_header(h: httpx.Headers, name: str) -> int | None:
    value = h.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def openai_rate_info(headers: Mapping[str, str]) -> RateInfo | None:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; None when none was sent."""
    h = httpx.Headers(headers)
    info = RateInfo(
        limit_requests=_int_header(h, "x-ratelimit-limit-requests"),
        remaining_requests=_int_header(h, "x-ratelimit-remaining-requests"),
        reset_requests=parse_duration(h.get("x-ratelimit-reset-requests")),
        limit_tokens=_int_header(h, "x-ratelimit-limit-tokens"),
        remaining_tokens=_int_header(h, "x-ratelimit-remaining-tokens"),
        reset_tokens=parse_duration(h.get("x-ratelimit-reset-tokens")),
    )
    return None if info == RateInfo() else info


def anthropic_rate_info(headers: Mapping[str, str], now: datetime) -> RateInfo | None:
    """``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (reset is RFC 3339;
    the ``input-tokens`` family stands in when ``tokens`` is absent); None when none was sent."""
    h = httpx.Headers(headers)
    tokens = "tokens" if "anthropic-ratelimit-tokens-limit" in h else "input-tokens"
    info = RateInfo(
        limit_requests=_int_header(h, "anthropic-ratelimit-requests-limit"),
        remaining_requests=_int_header(h, "anthropic-ratelimit-requests-remaining"),
        reset_requests=parse_rfc3339_delay(h.get("anthropic-ratelimit-requests-reset"), now),
        limit_tokens=_int_header(h, f"anthropic-ratelimit-{tokens}-limit"),
        remaining_tokens=_int_header(h, f"anthropic-ratelimit-{tokens}-remaining"),
        reset_tokens=parse_rfc3339_delay(h.get(f"anthropic-ratelimit-{tokens}-reset"), now),
    )
    return None if info == RateInfo() else info


def _openai_reset_hint(h: httpx.Headers) -> float | None:
    """After a 429 without Retry-After: when the exhausted bucket refills (the later of the
    exhausted ones; the earlier reset when the headers do not say which one ran out)."""
    info = openai_rate_info(h)
    if info is None:
        return None
    pairs = [
        (info.remaining_requests, info.reset_requests),
        (info.remaining_tokens, info.reset_tokens),
    ]
    exhausted = [reset for remaining, reset in pairs if remaining == 0 and reset is not None]
    if exhausted:
        return max(exhausted)
    known = [reset for _, reset in pairs if reset is not None]
    return min(known) if known else None


# --- classification -------------------------------------------------------------------------


@dataclass(frozen=True)
class Classified:
    """What a failure means: its kind, the provider's own message, the wait it asked for."""

    kind: ErrorKind
    message: str
    retry_after: float | None = None
    delivery: Delivery = Delivery.ANSWERED  # a provider's error answer, unless told otherwise


Classifier = Callable[[int | None, Any, Mapping[str, str]], Classified]

# (backend, pattern): a context-window overflow in that backend's words.
CONTEXT_WORDINGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("openai/vllm", re.compile(r"maximum context length", re.I)),
    ("vllm/sglang", re.compile(r"longer than the model'?s (maximum )?context length", re.I)),
    ("sglang", re.compile(r"context length", re.I)),
    ("llama.cpp", re.compile(r"exceeds? the available context size", re.I)),
    ("ollama", re.compile(r"exceeds? (the )?(maximum )?context (length|window)", re.I)),
    ("openai-responses", re.compile(r"exceeds the context window", re.I)),
    ("anthropic", re.compile(r"prompt is too long", re.I)),
    ("anthropic", re.compile(r"exceeds? context limit", re.I)),
)

_OPENAI_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_OPENAI_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_OPENAI_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "spend_limit_reached",
        "insufficient_balance",
        "insufficient_credits",
    }
)
_QUOTA_WORDINGS = re.compile(
    r"exceeded your current quota|spend(ing)? limit|credit balance is too low"
    r"|insufficient (credits|balance)",
    re.I,
)

_ANTHROPIC_TYPES: Mapping[str, ErrorKind] = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,  # context wording: CONTEXT_TOO_LONG
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.CONTEXT_TOO_LONG,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.SERVER,
    "overloaded_error": ErrorKind.OVERLOADED,
    "conflict_error": ErrorKind.SERVER,  # 409: retryable
    "timeout_error": ErrorKind.TIMEOUT,
}

_STATUS_KINDS: Mapping[int, ErrorKind] = {
    401: ErrorKind.AUTH,
    402: ErrorKind.QUOTA_EXHAUSTED,
    403: ErrorKind.AUTH,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    409: ErrorKind.SERVER,
    413: ErrorKind.CONTEXT_TOO_LONG,
    429: ErrorKind.RATE_LIMITED,
    529: ErrorKind.OVERLOADED,
}


def _status_kind(status: int | None) -> ErrorKind:
    """The kind a bare status means: the table, else 5xx SERVER, 4xx BAD_REQUEST; no status
    (an error inside a 200 stream) is SERVER."""
    if status is None:
        return ErrorKind.SERVER
    if status in _STATUS_KINDS:
        return _STATUS_KINDS[status]
    return ErrorKind.SERVER if status >= 500 or status < 400 else ErrorKind.BAD_REQUEST


def parse_body(raw: bytes) -> Any:
    """A response body as JSON when it is JSON, else its text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _no_message(status: int | None) -> str:
    return f"HTTP {status} without a message" if status else "an error without a message"


def _says_context_too_long(message: str) -> bool:
    return any(pattern.search(message) for _, pattern in CONTEXT_WORDINGS)


def _openai_fields(body: Any) -> tuple[str, str, str, int | None]:
    """(message, type, code, numeric code) of any OpenAI-compatible error body."""
    if isinstance(body, str):
        return body, "", "", None
    if not isinstance(body, Mapping):
        return json.dumps(body), "", "", None
    error = body.get("error")
    if isinstance(error, str):  # Ollama native, simple proxies
        return error, "", "", None
    fields: Mapping[str, Any] = error if isinstance(error, Mapping) else body
    code = fields.get("code")
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    return (
        str(fields.get("message") or ""),
        str(fields.get("type") or ""),
        "" if code is None or number is not None else str(code),
        number,
    )


def _retry_after_for(kind: ErrorKind, h: httpx.Headers) -> float | None:
    if not kind.retryable:
        return None
    wait = parse_retry_after(h)
    if wait is None and kind is ErrorKind.RATE_LIMITED:
        wait = _openai_reset_hint(h)
    return wait


def classify_openai_error(status: int | None, body: Any, headers: Mapping[str, str]) -> Classified:
    """Classify an OpenAI-compatible error (OpenAI, Azure, vLLM, SGLang, llama.cpp, Ollama).

    ``status`` None means an error object inside a 200 stream; its numeric ``code`` (vLLM and
    SGLang put the HTTP status there) stands in for it.
    """
    message, type_, code, number = _openai_fields(body)
    h = httpx.Headers(headers)
    if status is None:
        status = number
    codes = {code, type_}
    if status in (401, 403):
        kind = ErrorKind.AUTH
    elif codes & _OPENAI_QUOTA_CODES or status == 402:
        kind = ErrorKind.QUOTA_EXHAUSTED
    elif status == 429 and _QUOTA_WORDINGS.search(message):
        kind = ErrorKind.QUOTA_EXHAUSTED
    elif status == 404 or code == "model_not_found":
        kind = ErrorKind.NOT_FOUND
    elif status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif codes & _OPENAI_CONTEXT_CODES or _says_context_too_long(message):
        kind = ErrorKind.CONTEXT_TOO_LONG
    elif codes & _OPENAI_POLICY_CODES:
        kind = ErrorKind.CONTENT_POLICY
    else:
        kind = _status_kind(status)
    return Classified(kind, message or _no_message(status), _retry_after_for(kind, h))


def _anthropic_fields(body: Any) -> tuple[str, str, str]:
    """(message, error type, details.error_code) of an Anthropic error body."""
    if isinstance(body, str):
        return body, "", ""
    if not isinstance(body, Mapping):
        return json.dumps(body), "", ""
    error = body.get("error")
    if not isinstance(error, Mapping):
        return str(error or ""), "", ""
    details = error.get("details")
    detail_code = details.get("error_code") if isinstance(details, Mapping) else None
    return str(error.get("message") or ""), str(error.get("type") or ""), str(detail_code or "")


def classify_anthropic_error(
    status: int | None, body: Any, headers: Mapping[str, str]
) -> Classified:
    """Classify an Anthropic error body (or an ``error`` event inside a 200 stream: status
    None), by its ``error.type`` first and its status when the type is unknown."""
    message, type_, detail_code = _anthropic_fields(body)
    h = httpx.Headers(headers)
    if detail_code == "enforced_spend_limit_reached" or _QUOTA_WORDINGS.search(message):
        kind = ErrorKind.QUOTA_EXHAUSTED
    elif status == 529:
        kind = ErrorKind.OVERLOADED
    elif type_ in _ANTHROPIC_TYPES:
        kind = _ANTHROPIC_TYPES[type_]
    else:
        kind = _status_kind(status)
    if kind is ErrorKind.BAD_REQUEST and _says_context_too_long(message):
        kind = ErrorKind.CONTEXT_TOO_LONG
    return Classified(kind, message or _no_message(status), _retry_after_for(kind, h))


#: Failures while getting a connection: the request never left (billed nothing). Everything else
#: below HTTP (a write, a read, a reset) may come after the provider has the request.
_BEFORE_SENDING = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def classify_transport_error(exc: httpx.HTTPError) -> Classified:
    """A failure below HTTP: any timeout is TIMEOUT; refused, reset, dropped is CONNECTION.
    Only a failure to connect is :attr:`Delivery.UNSENT`; the others are UNKNOWN."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    delivery = Delivery.UNSENT if isinstance(exc, _BEFORE_SENDING) else Delivery.UNKNOWN
    if isinstance(exc, httpx.TimeoutException):
        return Classified(ErrorKind.TIMEOUT, text, delivery=delivery)
    return Classified(ErrorKind.CONNECTION, text, delivery=delivery)


# --- one call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallContext:
    """Who is calling (for the error's provider/model) and what must never be printed."""

    provider: str
    model: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def fail(self, kind: ErrorKind, message: str, **kw: Any) -> ProviderError:
        """A ProviderError whose message is redacted and cut to MAX_MESSAGE_CHARS."""
        text = redact(message, self.secrets)
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        return ProviderError(kind, text, provider=self.provider, model=self.model, **kw)

    def error(self, classified: Classified, status: int | None = None) -> ProviderError:
        """The ProviderError of a classified failure."""
        return self.fail(
            classified.kind,
            classified.message,
            status=status,
            retry_after=classified.retry_after,
            delivery=classified.delivery,
        )

    def transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        """The ProviderError of an httpx exception (never its request or headers)."""
        return self.error(classify_transport_error(exc))


def post_json(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    timeout: float,
    ctx: CallContext,
    classify: Classifier,
) -> tuple[Any, httpx.Headers]:
    """POST ``body``; the decoded JSON answer and the response headers, or a ProviderError."""
    try:
        response = client.post(
            url, json=body, headers=dict(headers), timeout=httpx.Timeout(timeout)
        )
    except httpx.HTTPError as exc:
        raise ctx.transport_error(exc) from None
    status = response.status_code
    if status >= 400:
        raise ctx.error(classify(status, parse_body(response.content), response.headers), status)
    try:
        return json.loads(response.content), response.headers
    except ValueError:
        raise ctx.fail(
            ErrorKind.SERVER, "the answer is not JSON", status=status, delivery=Delivery.UNKNOWN
        ) from None


@dataclass(frozen=True)
class SSEStream:
    """An open stream: its events (deadline-checked) and its response headers."""

    events: Iterator[SSEEvent]
    headers: httpx.Headers


def _within_deadline(
    lines: Iterable[str], deadline: float, clock: Callable[[], float], ctx: CallContext
) -> Iterator[str]:
    for line in lines:
        if clock() > deadline:
            raise ctx.fail(ErrorKind.TIMEOUT, "the stream passed its overall deadline")
        yield line


def _drain(lines: Iterator[str], limit: int = 16) -> None:
    """Read what follows the last event (usually nothing but the end) so the connection goes
    back to the pool; a server that keeps talking is cut off instead."""
    try:
        for _ in itertools.islice(lines, limit):
            pass
    except (ProviderError, httpx.HTTPError):
        pass


@contextmanager
def open_sse(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    timeout: float,
    ctx: CallContext,
    classify: Classifier,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[SSEStream]:
    """POST ``body`` and hold the SSE answer open. An error status is classified before
    anything is yielded; a drop, a timeout or the overall deadline passing while the caller
    reads the events becomes a ProviderError there. A caller that stops reading after the last
    event leaves the rest to be drained, so the connection can be reused."""
    deadline = clock() + timeout
    try:
        with client.stream(
            "POST", url, json=body, headers=dict(headers), timeout=httpx.Timeout(timeout)
        ) as response:
            status = response.status_code
            if status >= 400:
                response.read()
                classified = classify(status, parse_body(response.content), response.headers)
                raise ctx.error(classified, status)
            lines = _within_deadline(response.iter_lines(), deadline, clock, ctx)
            yield SSEStream(iter_sse(lines), response.headers)
            _drain(lines)
    except httpx.HTTPError as exc:
        raise ctx.transport_error(exc) from None
