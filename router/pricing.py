"""Prices: rates per (provider, model) from genai-prices (bundled, offline) and overrides.

``calc_price`` costs ~240 µs a call, so rates are resolved once per (provider, model, day) into
:class:`Rates` and the arithmetic is done here, in ``Decimal`` USD, identically for streamed and
non-streamed calls. Tiered prices follow genai-prices' "cliff" rule: when the call's total input
passes a tier's start, that tier's rate applies to all its tokens (output included).

A model without a known price is never free: :meth:`PriceBook.rates` returns None and the caller
either refuses or charges the highest rate it knows (``Rates.source`` says so). A zero price is
only ever an explicit override (a local model, the mock provider).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from router.types import Usage

__all__ = ["FREE", "PriceBook", "Rate", "Rates", "rates_from_override"]

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Rate:
    """USD per million tokens, with cliff tiers: ``((start, price), ...)`` ascending."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, total_input: int) -> Decimal:
        """The rate for a call with ``total_input`` input tokens."""
        for start, price in reversed(self.tiers):
            if total_input > start:
                return price
        return self.base

    @functools.cached_property
    def highest(self) -> Decimal:
        """The highest rate any call could pay."""
        return max([self.base, *(p for _, p in self.tiers)])


@dataclass(frozen=True, kw_only=True)
class Rates:
    """Everything needed to price a call of one model."""

    input: Rate
    output: Rate
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None
    context_window: int | None = None
    source: str = ""  # "genai-prices 0.2.3", "override", "unknown: charged at ..."

    def cost(self, usage: Usage) -> Decimal:
        """What ``usage`` costs at these rates (cache reads and writes at their own rates)."""
        total = usage.input_tokens
        amount = self.input.at(total) * usage.uncached_input_tokens
        amount += self.output.at(total) * usage.output_tokens
        for tokens, rate in (
            (usage.cache_read_tokens, self.cache_read),
            (usage.cache_write_tokens, self.cache_write),
            (usage.cache_write_1h_tokens, self.cache_write_1h or self.cache_write),
        ):
            if tokens:
                amount += (rate or self.input).at(total) * tokens
        return amount / _MILLION

    @functools.cached_property
    def _top_input(self) -> Decimal:
        rates = (self.input, self.cache_write, self.cache_write_1h)
        return max(r.highest for r in rates if r is not None)

    def worst_case(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        """The most a call can cost: all input uncached, every output token used, top tier."""
        top = self._top_input * input_tokens + self.output.highest * max_output_tokens
        return top / _MILLION

    def expected(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The expected cost of a call, for ranking (no cache reads assumed)."""
        amount = self.input.at(input_tokens) * input_tokens
        return (amount + self.output.at(input_tokens) * output_tokens) / _MILLION


#: The rates of a free route (the mock provider; a local model priced at zero).
FREE = Rates(input=Rate(_ZERO), output=Rate(_ZERO), source="free")


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return Rate(value)
    tiers = tuple((int(t.start), Decimal(t.price)) for t in getattr(value, "tiers", ()))
    return Rate(Decimal(value.base), tiers)


def rates_from_override(spec: Mapping[str, Any], *, source: str = "override") -> Rates:
    """Rates from a config entry: ``{input: 0.15, output: 0.6, cacheRead: ..., cacheWrite: ...,
    contextWindow: ...}`` in USD per million tokens."""

    def get(*names: str) -> Rate | None:
        for name in names:
            if spec.get(name) is not None:
                return Rate(Decimal(str(spec[name])))
        return None

    input_rate, output_rate = get("input"), get("output")
    if input_rate is None or output_rate is None:
        raise ValueError("a price override needs 'input' and 'output' (USD per million tokens)")
    window = spec.get("contextWindow", spec.get("context_window"))
    return Rates(
        input=input_rate,
        output=output_rate,
        cache_read=get("cacheRead", "cache_read"),
        cache_write=get("cacheWrite", "cache_write"),
        cache_write_1h=get("cacheWrite1h", "cache_write_1h"),
        context_window=int(window) if window is not None else None,
        source=source,
    )


#: genai-prices' provider id for each kind of deployment that it knows.
_GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic"}


@dataclass
class PriceBook:
    """Rates by (provider kind, model): overrides first, then genai-prices' bundled data."""

    overrides: dict[tuple[str, str], Rates] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _cache: dict[tuple[str, str, date], Rates | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _day: tuple[float, datetime] | None = field(default=None, repr=False)

    def _now(self) -> datetime:
        """The clock, read at most once a second (prices change by the day)."""
        tick = time.monotonic()
        day = self._day
        if day is None or tick - day[0] > 1.0:
            day = self._day = (tick, self.clock())
        return day[1]

    def rates(self, kind: str, model: str, deployment: str | None = None) -> Rates | None:
        """The rates of ``model`` at a ``kind`` deployment today; None when unknown.

        Overrides are looked up by (deployment name, model), then (kind, model), then with
        model ``*`` (every model of that deployment or kind).
        """
        if kind == "mock":
            return FREE
        for name, pattern in ((deployment, model), (kind, model), (deployment, "*"), (kind, "*")):
            override = self.overrides.get((name or "", pattern))
            if override is not None:
                return override
        provider_id = _GENAI_PROVIDER.get(kind)
        if provider_id is None:
            return None
        now = self._now()
        day = (kind, model, now.date())
        with self._lock:
            if day in self._cache:
                return self._cache[day]
        found = _lookup(provider_id, model, now)
        with self._lock:
            self._cache[day] = found
        return found


def _lookup(provider_id: str, model: str, at: datetime) -> Rates | None:
    from genai_prices import data_snapshot  # ~0.3 s the first time: only when a price is needed

    try:
        _provider, info = data_snapshot.get_snapshot().find_provider_model(
            model, None, provider_id, None
        )
    except LookupError:
        return None
    prices = info.get_prices(at)
    input_rate, output_rate = _rate(prices.input_mtok), _rate(prices.output_mtok)
    if input_rate is None or output_rate is None:
        return None
    return Rates(
        input=input_rate,
        output=output_rate,
        cache_read=_rate(prices.cache_read_mtok),
        cache_write=_rate(prices.cache_write_mtok),
        cache_write_1h=_rate(getattr(prices, "cache_write_1h_mtok", None)),
        context_window=info.context_window,
        source=f"genai-prices {_version()}",
    )


@functools.cache
def _version() -> str:
    from importlib.metadata import version

    return version("genai-prices")
