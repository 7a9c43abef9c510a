"""The router: features → filters → ranking → (cache) → reserve → journal → try the chain → settle.

Every attempt is journaled in the ledger at its reservation (the worst case) before its request
leaves, and settled there after (``router/ledger.py``): a process killed mid-call leaves a
record that still counts what the call may have cost. A ledger that cannot journal refuses the
attempt (:class:`LedgerError`); one that cannot settle leaves the record counted too high.
A failed attempt stays counted by how far its request got (:class:`Delivery`): at the usage the
provider reported; at nothing when the connection was never made or the provider answered with
an error; at its reservation when it left and no readable answer came back (a timeout, a drop,
an unreadable answer): the provider may have done, and billed, the whole work.

One retry loop, here, owns every failure (provider clients make one attempt each):

* rate-limited, overloaded, 5xx, timeout, connection: retry the same route while attempts are
  left and the wait (``Retry-After``, else jittered backoff) fits ``max_wait`` and the deadline;
  otherwise fall back to the next route at once (no 47 s waits: LiteLLM #3274). The route's
  breaker cools it (the later of two ``Retry-After`` deadlines holds);
* context too long: skip every later route whose context window is not larger;
* content policy: skip later routes of the same provider kind;
* spent quota, spend limit, auth: disable the deployment (no retry), fall back;
* unknown model: disable that route, fall back; bad request: raise (no route will like it more).

A fallback never restarts the attempts of earlier routes (LiteLLM #19985), and never widens the
hard filters: the chain is decided before the first attempt. Streams fall back only before the
first text is handed on; after that a failure raises :class:`MidStreamError` with the partial text.

Synchronous on purpose: agent steps run on worker threads and an LLM host call blocks only its
own thread (``ARCHITECTURE.md``); budgets, breakers and the cache are thread-safe.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from router.budget import BudgetLimit, Budgets, Lease
from router.cache import ResponseCache, cacheable
from router.errors import (
    BudgetExceeded,
    Delivery,
    ErrorKind,
    LedgerError,
    MidStreamError,
    NoRoute,
    ProviderError,
)
from router.features import Features, estimate_tokens, extract
from router.health import Health
from router.ledger import CostRecord, CostState, Ledger, MemoryLedger
from router.pricing import PriceBook, Rate, Rates
from router.providers.base import Provider
from router.ratelimit import RateLimits
from router.routing import Candidate, Decision, Deployment, Route, RoutingPolicy, State, decide
from router.types import ChatRequest, ChatResponse, StreamEvent, Usage

__all__ = ["CallContext", "Routed", "Router"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CallContext:
    """Who is calling, and what limits apply."""

    workflow: str = ""
    agent: str = ""
    execution: str = ""
    step: str = ""
    budgets: tuple[BudgetLimit, ...] = ()
    deadline: float | None = None  # monotonic time by which the call must be done


@dataclass(frozen=True, kw_only=True)
class Routed:
    """A routed call's answer, what it cost, and how it was chosen."""

    response: ChatResponse
    cost: Decimal
    price_source: str
    route: str
    fallback_depth: int
    cache_hit: bool
    decision: Decision
    attempts: tuple[str, ...] = ()  # "openai/gpt-4o: rate-limited ..." per failed attempt


@dataclass(frozen=True)
class _Journaled:
    """An attempt's reserved record in the ledger: its key, and the record as journaled."""

    key: int
    entry: CostRecord


@dataclass
class _Progress:
    """What the loop learned while walking the chain."""

    failures: list[str] = field(default_factory=list)
    window_at_most: int | None = None  # skip routes whose window is not larger than this
    refused_kinds: set[str] = field(default_factory=set)  # content policy: skip these kinds
    budget_refused: int = 0

    def skip(self, candidate: Candidate, deployment: Deployment) -> str | None:
        window = candidate.rates.context_window
        if self.window_at_most is not None and (window is None or window <= self.window_at_most):
            return f"context window not larger than {self.window_at_most:,}"
        if deployment.kind in self.refused_kinds:
            return f"content policy of {deployment.kind}"
        return None


class Router:
    """Routes LLM calls over configured deployments. Thread-safe."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        trusted: Sequence[str] = (),
        prices: PriceBook | None = None,
        ledger: Ledger | None = None,
        budgets: Budgets | None = None,
        cache: ResponseCache | None = None,
        health: Health | None = None,
        unknown_price: str = "highest",
        max_attempts: int = 2,
        max_wait: float = 10.0,
        timeout: float = 120.0,
        rate_limits: RateLimits | None = None,
        max_queue: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        unconfigured: Mapping[str, str] | None = None,
    ) -> None:
        self.providers = dict(providers)
        #: deployments named in the config but unusable (no key...), with why
        self.unconfigured = dict(unconfigured or {})
        self.deployments = {
            name: Deployment(name, p.kind, trusted=name in trusted) for name, p in providers.items()
        }
        self.prices = prices or PriceBook()
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.budgets = budgets or Budgets()
        self.cache = cache or ResponseCache(clock=clock)
        self.health = health or Health(clock)
        self.limits = rate_limits or RateLimits(clock=clock)
        self.max_queue = max_queue  # wait at most this long for a rate-limit bucket
        self.unknown_price = unknown_price
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.timeout = timeout
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self._latency: dict[str, float] = {}
        self._highest: dict[tuple[Route, ...], Rates | None] = {}

    # -- deciding ----------------------------------------------------------------------

    def _highest_known(self, policy: RoutingPolicy) -> Rates | None:
        """Rates at which an unknown price is charged: the highest of the policy's known ones
        (remembered per set of routes)."""
        if self.unknown_price != "highest":
            return None
        known = self._highest
        if policy.routes in known:
            return known[policy.routes]
        found = self._compute_highest(policy)
        if len(known) > 10_000:
            self._highest = known = {}  # a new dict: readers of the old one are unaffected
        known[policy.routes] = found
        return found

    def _compute_highest(self, policy: RoutingPolicy) -> Rates | None:
        known = [
            r
            for route in policy.routes
            if (d := self.deployments.get(route.deployment)) is not None
            and (r := self.prices.rates(d.kind, route.model, d.name)) is not None
            and (r.input.highest > 0 or r.output.highest > 0)
        ]
        if not known:
            return None
        return Rates(
            input=Rate(max(r.input.highest for r in known)),
            output=Rate(max(r.output.highest for r in known)),
            source="unknown price: charged at the highest known rate",
        )

    def decide(
        self, policy: RoutingPolicy, request: ChatRequest, ctx: CallContext | None = None
    ) -> Decision:
        """The chain a call would try now, and why (no call is made)."""
        ctx = ctx or CallContext()
        features = extract(_with_defaults(policy, request), policy.declared)
        return self._decide(policy, features, ctx)

    def _begin(
        self, policy: RoutingPolicy, request: ChatRequest, ctx: CallContext
    ) -> tuple[Features, Decision, ChatRequest]:
        """A call's features, its routing decision, and the request as it will be sent."""
        request = _with_defaults(policy, request)
        features = extract(request, policy.declared)
        decision = self._decide(policy, features, ctx)
        return features, decision, replace(request, max_tokens=features.max_output_tokens)

    def _decide(self, policy: RoutingPolicy, features: Features, ctx: CallContext) -> Decision:
        unusable = {name: f"not configured: {why}" for name, why in self.unconfigured.items()}
        state = State(
            disabled={**unusable, **self.health.disabled()},
            cooling=self.health.cooling(),
            budget_room=self.budgets.room(ctx.budgets),
            latency_ms=dict(self._latency),
            unknown_price=self._highest_known(policy),
        )
        return decide(policy, features, self.deployments, self.prices, state)

    # -- calling -------------------------------------------------------------------------

    def complete(
        self, policy: RoutingPolicy, request: ChatRequest, ctx: CallContext | None = None
    ) -> Routed:
        """Route and make one call; raises NoRoute/BudgetExceeded when nothing can answer."""
        ctx = ctx or CallContext()
        features, decision, sent = self._begin(policy, request, ctx)
        progress = _Progress()
        for depth, candidate in enumerate(decision.chain):
            skipped = self._skip(candidate, progress)
            if skipped:
                progress.failures.append(f"{candidate.route.label}: skipped ({skipped})")
                continue
            routed = self._try(candidate, depth, sent, features, decision, ctx, progress)
            if routed is not None:
                return routed
        raise self._nothing(decision, progress)

    def _skip(self, candidate: Candidate, progress: _Progress) -> str | None:
        """Why a route of the chain is skipped now (a failure earlier in this call)."""
        route = candidate.route
        disabled = self.health.disabled()
        why = disabled.get(route.deployment) or disabled.get(route.label)
        if why:
            return f"disabled: {why}"
        return progress.skip(candidate, self.deployments[route.deployment])

    def _nothing(self, decision: Decision, progress: _Progress) -> NoRoute:
        reasons = dict(decision.dropped)
        for failure in progress.failures:
            route, _, why = failure.partition(": ")
            reasons[route] = why
        budget_only = decision.dropped and all(
            why.startswith("budget") for _, why in decision.dropped
        )
        if (not decision.chain and budget_only) or (
            progress.budget_refused and progress.budget_refused == len(decision.chain)
        ):
            return BudgetExceeded("every eligible route would exceed the budget", reasons)
        if not decision.chain:
            return NoRoute("no route can take this request", reasons)
        return NoRoute("every route failed: " + "; ".join(progress.failures), reasons)

    def _reserve(self, candidate: Candidate, ctx: CallContext, progress: _Progress) -> Lease | None:
        lease = self.budgets.reserve(ctx.budgets, candidate.worst_cost)
        if lease is None:
            progress.budget_refused += 1
            progress.failures.append(
                f"{candidate.route.label}: budget (worst case ${candidate.worst_cost:.6f} "
                "no longer fits)"
            )
        return lease

    def _try(
        self,
        candidate: Candidate,
        depth: int,
        request: ChatRequest,
        features: Features,
        decision: Decision,
        ctx: CallContext,
        progress: _Progress,
    ) -> Routed | None:
        route = candidate.route
        provider = self.providers[route.deployment]
        reason = f"matched {candidate.matched}" if candidate.matched else "fallback"
        cache_key = None
        if cacheable(request):
            cache_key = ResponseCache.key(route.label, request, features.data_sensitivity)
            hit = self.cache.get(cache_key)
            if hit is not None:  # nothing leaves: recorded settled at zero, with no reservation
                self._record(
                    self._entry(ctx, candidate, depth, 1, reason, hit.usage, cache_hit=True)
                )
                return Routed(
                    response=hit,
                    cost=Decimal(0),
                    price_source=candidate.rates.source,
                    route=route.label,
                    fallback_depth=depth,
                    cache_hit=True,
                    decision=decision,
                    attempts=tuple(progress.failures),
                )
        tokens = features.input_tokens + features.output_tokens
        for attempt in range(1, self.max_attempts + 1):
            if self._past_deadline(route.label, ctx, progress):
                return None
            if not self._admit(route.label, tokens, ctx, progress):
                return None
            lease = self._reserve(candidate, ctx, progress)  # one per attempt: each may bill
            if lease is None:
                return None
            journal = self._journal(ctx, candidate, features, lease, depth, attempt, reason)
            spent: Decimal | None = None  # None: nothing billed, release the reservation
            started = self.clock()
            try:
                response = self._call(provider, route, request, ctx)
            except ProviderError as error:
                billed, spent = _billed(error, journal.entry, candidate.rates)
                self._failed(candidate, error, started, journal, progress, billed, spent)
                if error.kind is ErrorKind.BAD_REQUEST:
                    raise
                if self._retry(error, attempt, ctx):
                    continue
                return None
            else:
                latency = (self.clock() - started) * 1000
                usage = response.usage
                if usage.estimated and not (usage.input_tokens or usage.output_tokens):
                    usage = Usage(  # the provider sent no usage: estimate, and say so
                        input_tokens=estimate_tokens(request.text()),
                        output_tokens=estimate_tokens(response.text),
                        estimated=True,
                    )
                    response = replace(response, usage=usage)
                cost = spent = candidate.rates.cost(usage)
                self.health.success(route.label)
                self.health.rate(route.label, response.rate)
                self.limits.observe(route.label, response.rate)
                self.limits.settle(route.label, tokens, usage.input_tokens + usage.output_tokens)
                self._observe(route.label, latency)
                self._settle(journal, usage, cost, latency, "ok")
                if cache_key is not None:
                    self.cache.put(cache_key, response)
                return Routed(
                    response=response,
                    cost=cost,
                    price_source=candidate.rates.source,
                    route=route.label,
                    fallback_depth=depth,
                    cache_hit=False,
                    decision=decision,
                    attempts=tuple(progress.failures),
                )
            finally:
                self._close(lease, spent, route.label)
        return None

    def _call(
        self, provider: Provider, route: Route, request: ChatRequest, ctx: CallContext
    ) -> ChatResponse:
        """One attempt; whatever goes wrong is a ProviderError (a malformed answer: SERVER)."""
        try:
            return provider.complete(route.model, request, timeout=self._remaining(ctx))
        except ProviderError:
            raise
        except Exception as exc:  # a provider client's bug or an answer it could not read
            raise ProviderError(
                ErrorKind.SERVER,
                f"unreadable answer: {type(exc).__name__}: {str(exc)[:200]}",
                provider=route.deployment,
                model=route.model,
                delivery=Delivery.UNKNOWN,  # the request may have been answered, and billed
            ) from exc

    def _journal(
        self,
        ctx: CallContext,
        candidate: Candidate,
        features: Features,
        lease: Lease,
        depth: int,
        attempt: int,
        reason: str,
    ) -> _Journaled:
        """Journal an attempt before its request leaves: a reserved record at the worst case
        (its worst-case tokens, estimated). A ledger that cannot keep it refuses the attempt."""
        worst = Usage(
            input_tokens=features.max_input_tokens,
            output_tokens=features.max_output_tokens,
            estimated=True,
        )
        entry = self._entry(
            ctx, candidate, depth, attempt, reason, worst, cost=lease.amount, reserved=True
        )
        try:
            key = self.ledger.record(entry)
        except Exception as exc:
            self.budgets.release(lease)
            raise LedgerError(
                f"{candidate.route.label}: the cost ledger cannot journal the attempt "
                f"({type(exc).__name__}: {str(exc)[:200]}), so it was not sent"
            ) from exc
        return _Journaled(key, entry)

    def _settle(
        self,
        journal: _Journaled,
        usage: Usage | None,
        cost: Decimal | None,
        latency_ms: float,
        outcome: str,
        error: str = "",
    ) -> None:
        """Replace an attempt's reserved record by how it ended: settled at ``cost`` for
        ``usage``, or released (``usage`` None: nothing was billed). A ledger that fails here
        leaves the record reserved, counted at its worst case (logged, never raised)."""
        billed = usage is not None and cost is not None
        entry = replace(
            journal.entry,
            usage=usage if usage is not None else Usage(),
            cost=cost if cost is not None and billed else Decimal(0),
            latency_ms=round(latency_ms, 3),
            outcome=outcome,
            error=error,
            state=CostState.SETTLED if billed else CostState.RELEASED,
        )
        try:
            self.ledger.settle(journal.key, entry)
        except Exception:
            log.exception(
                "cannot settle the ledger record of an attempt at %s/%s: it stays counted at "
                "its reservation ($%s)",
                entry.provider,
                entry.model,
                entry.reserved,
            )

    def _close(self, lease: Lease, spent: Decimal | None, label: str) -> None:
        """Settle an attempt's reservation at what it cost, or release it."""
        if spent is None:
            self.budgets.release(lease)
        elif self.budgets.settle(lease, spent):
            log.error(
                "%s cost $%s, more than the $%s reserved for it: the worst case is wrong",
                label,
                spent,
                lease.amount,
            )

    def _past_deadline(self, label: str, ctx: CallContext, progress: _Progress) -> bool:
        if ctx.deadline is not None and self.clock() >= ctx.deadline:
            progress.failures.append(f"{label}: not tried (the call's deadline has passed)")
            return True
        return False

    def _admit(self, label: str, tokens: int, ctx: CallContext, progress: _Progress) -> bool:
        """Take a request and ``tokens`` from the route's buckets, waiting up to ``max_queue``
        for them to refill; False (and why) when the route must be skipped for now."""
        wait = self.limits.admit(label, tokens)
        if (
            wait > 0
            and wait <= self.max_queue
            and (ctx.deadline is None or self.clock() + wait < ctx.deadline)
        ):
            self.sleep(wait)
            wait = self.limits.admit(label, tokens)
        if wait > 0:
            progress.failures.append(f"{label}: rate limit (a slot frees in {wait:.1f} s)")
            return False
        return True

    def _remaining(self, ctx: CallContext) -> float:
        if ctx.deadline is None:
            return self.timeout
        return max(0.001, min(self.timeout, ctx.deadline - self.clock()))

    def _retry(self, error: ProviderError, attempt: int, ctx: CallContext) -> bool:
        """Wait and retry the same route, when worth it; False means fall back now."""
        if not error.kind.retryable or attempt >= self.max_attempts:
            return False
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = min(self.max_wait, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)  # noqa: S311
        if wait > self.max_wait:
            return False
        if ctx.deadline is not None and self.clock() + wait >= ctx.deadline:
            return False
        self.sleep(wait)
        return True

    def _failed(
        self,
        candidate: Candidate,
        error: ProviderError,
        started: float,
        journal: _Journaled,
        progress: _Progress,
        billed: Usage | None,
        spent: Decimal | None,
    ) -> None:
        route = candidate.route
        self.health.failure(route.label, route.deployment, error)
        latency = (self.clock() - started) * 1000
        self._settle(journal, billed, spent, latency, error.kind.value, str(error)[:500])
        progress.failures.append(f"{route.label}: {error.kind.value} ({error.message[:200]})")
        if error.kind is ErrorKind.CONTEXT_TOO_LONG:
            window = candidate.rates.context_window or 0
            progress.window_at_most = max(progress.window_at_most or 0, window)
        elif error.kind is ErrorKind.CONTENT_POLICY:
            progress.refused_kinds.add(self.deployments[route.deployment].kind)

    def _observe(self, label: str, latency_ms: float) -> None:
        old = self._latency.get(label)
        self._latency[label] = latency_ms if old is None else 0.8 * old + 0.2 * latency_ms

    def _entry(
        self,
        ctx: CallContext,
        candidate: Candidate,
        depth: int,
        attempt: int,
        reason: str,
        usage: Usage,
        *,
        cost: Decimal = Decimal(0),
        reserved: bool = False,
        cache_hit: bool = False,
    ) -> CostRecord:
        """A record of one attempt, timed now: reserved at ``cost``, or settled (a cache hit)."""
        route = candidate.route
        return CostRecord(
            at=self.wall(),
            workflow=ctx.workflow,
            agent=ctx.agent,
            execution=ctx.execution,
            step=ctx.step,
            provider=route.deployment,
            kind=self.deployments[route.deployment].kind,
            model=route.model,
            usage=usage,
            cost=cost,
            price_source=candidate.rates.source,
            latency_ms=0.0,
            cache_hit=cache_hit,
            fallback_depth=depth,
            attempt=attempt,
            outcome="pending" if reserved else "ok",
            reason=reason,
            state=CostState.RESERVED if reserved else CostState.SETTLED,
            reserved=cost if reserved else Decimal(0),
        )

    def _record(self, entry: CostRecord) -> None:
        """Keep a record that needs no reservation (a cache hit); a failing ledger is logged,
        never raised: the call it records cost nothing."""
        try:
            self.ledger.record(entry)
        except Exception:
            log.exception("cannot record a cache hit at %s/%s", entry.provider, entry.model)

    # -- streaming -------------------------------------------------------------------------

    def stream(
        self, policy: RoutingPolicy, request: ChatRequest, ctx: CallContext | None = None
    ) -> Generator[StreamEvent, None, None]:
        """Route one streamed call. Events as the provider sends them; the last one is ``done``
        with the usage (estimated and marked so when the provider sent none). Falls back only
        before the first text; a later failure raises MidStreamError with the partial text. A
        consumer that stops reading early is charged for the text it was handed."""
        ctx = ctx or CallContext()
        features, decision, sent = self._begin(policy, request, ctx)
        progress = _Progress()
        for depth, candidate in enumerate(decision.chain):
            skipped = self._skip(candidate, progress)
            if skipped:
                progress.failures.append(f"{candidate.route.label}: skipped ({skipped})")
                continue
            done = yield from self._stream_one(candidate, depth, sent, features, ctx, progress)
            if done:
                return
        raise self._nothing(decision, progress)

    def _stream_one(
        self,
        candidate: Candidate,
        depth: int,
        request: ChatRequest,
        features: Features,
        ctx: CallContext,
        progress: _Progress,
    ) -> Generator[StreamEvent, None, bool]:
        route = candidate.route
        provider = self.providers[route.deployment]
        reason = f"matched {candidate.matched}" if candidate.matched else "fallback"
        tokens = features.input_tokens + features.output_tokens

        def handed_on(text: list[str]) -> Usage:
            return Usage(
                input_tokens=estimate_tokens(request.text()),
                output_tokens=estimate_tokens("".join(text)),
                estimated=True,
            )

        for attempt in range(1, self.max_attempts + 1):
            if self._past_deadline(route.label, ctx, progress):
                return False
            if not self._admit(route.label, tokens, ctx, progress):
                return False
            lease = self._reserve(candidate, ctx, progress)
            if lease is None:
                return False
            journal = self._journal(ctx, candidate, features, lease, depth, attempt, reason)
            spent: Decimal | None = None
            started = self.clock()
            text: list[str] = []
            try:
                for event in self._events(provider, route, request, ctx):
                    if not event.done:
                        if event.text:
                            text.append(event.text)
                            yield event
                        continue
                    usage = event.usage or handed_on(text)
                    cost = spent = candidate.rates.cost(usage)
                    latency = (self.clock() - started) * 1000
                    self.health.success(route.label)
                    self.health.rate(route.label, event.rate)
                    self.limits.observe(route.label, event.rate)
                    self.limits.settle(
                        route.label, tokens, usage.input_tokens + usage.output_tokens
                    )
                    self._observe(route.label, latency)
                    self._settle(journal, usage, cost, latency, "ok")
                    yield replace(event, usage=usage)
                    return True
                raise ProviderError(ErrorKind.CONNECTION, "the stream ended without finishing")
            except ProviderError as error:
                billed, spent = _billed(error, journal.entry, candidate.rates)
                if billed is None and text:  # the provider stopped it: billed what it sent
                    billed = handed_on(text)
                    spent = candidate.rates.cost(billed)
                self._failed(candidate, error, started, journal, progress, billed, spent)
                if text:  # text was handed on: never replay it elsewhere
                    raise MidStreamError(error, "".join(text)) from error
                if error.kind is ErrorKind.BAD_REQUEST:
                    raise
                if self._retry(error, attempt, ctx):
                    continue
                return False
            except GeneratorExit:  # the consumer stopped reading: charge what it was handed
                if spent is None:
                    usage = handed_on(text)
                    spent = candidate.rates.cost(usage)
                    latency = (self.clock() - started) * 1000
                    self._settle(journal, usage, spent, latency, "abandoned")
                raise
            finally:
                self._close(lease, spent, route.label)
        return False

    def _events(
        self, provider: Provider, route: Route, request: ChatRequest, ctx: CallContext
    ) -> Iterator[StreamEvent]:
        """The provider's events; a malformed stream is a ProviderError (SERVER)."""
        try:
            yield from provider.stream(route.model, request, timeout=self._remaining(ctx))
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(
                ErrorKind.SERVER,
                f"unreadable stream: {type(exc).__name__}: {str(exc)[:200]}",
                provider=route.deployment,
                model=route.model,
            ) from exc


def _billed(
    error: ProviderError, reserved: CostRecord, rates: Rates
) -> tuple[Usage | None, Decimal | None]:
    """What a failed attempt stays billed at (usage and cost; None: nothing): the usage the
    provider reported (a withheld answer); nothing when the request never left or the provider
    answered with an error; its reservation (worst-case tokens and cost) when it left and no
    readable answer came back, since the provider may have done the whole work."""
    if error.usage is not None:
        return error.usage, rates.cost(error.usage)
    if error.delivery is Delivery.UNKNOWN:
        return reserved.usage, reserved.reserved
    return None, None


def _with_defaults(policy: RoutingPolicy, request: ChatRequest) -> ChatRequest:
    """The manifest's llm.temperature as the default, its maxTokens as the default and cap."""
    changes: dict[str, object] = {}
    if request.temperature is None and policy.temperature is not None:
        changes["temperature"] = policy.temperature
    if policy.max_tokens is not None:
        changes["max_tokens"] = min(request.max_tokens or policy.max_tokens, policy.max_tokens)
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]
