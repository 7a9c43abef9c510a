"""This node as a load balancer or an orchestrator sees it: its role and its readiness.

**Role.** In a fleet on one PostgreSQL database one node leads (runs the reconciler and the
scheduler) and the others follow (serve the API, run steps); the election
(:mod:`agentflowd.cluster.membership`) sets :attr:`Daemon.role
<agentflowd.daemon.Daemon.role>`, and ``/readyz`` reports it, so a probe or an operator can tell
which node leads. A follower's first pass is the leader's: it is ready once the store holds
a reconciled revision.

**Readiness** (``/readyz``, and systemd's ``READY=1``) means "send me traffic": the API answers
from the store, so the store must hold what git says. A node is ready when

* its first reconcile pass is done (before it, the API would serve the state a previous run left,
  possibly from another commit, and a webhook trigger could start a workflow git has removed);
  a pass that failed because the database went away does not count (:func:`pass_counts`), a pass
  that failed because the git remote is down does: the last good versions keep running, as they
  do after any failed fetch, and a forge outage must not take a whole fleet out of service;
* and its database answers now: ``SELECT 1``, bounded by a timeout, cached for
  :data:`CHECK_TTL` seconds so a storm of probes costs the database one query a second.

The check runs on its own short-lived thread, off the event loop, and never more than one at a
time: a database that hangs (a dropped network, a full backlog) ties up one thread, reported as
"no answer within 2 s", rather than one thread per probe. Time comes from an injected monotonic
clock so tests move it by hand. Liveness (``/healthz``) asks none of this: restarting a process
because its database is down would not bring the database back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from agentflowd.errors import StoreUnavailable

__all__ = [
    "CHECK_TIMEOUT",
    "CHECK_TTL",
    "FIRST_RECONCILE_PENDING",
    "NodeRole",
    "Readiness",
    "ReadinessReport",
    "pass_counts",
]

#: How long a database check's answer is reused, in seconds.
CHECK_TTL = 1.0
#: How long a database check may take before the database counts as unreachable, in seconds.
CHECK_TIMEOUT = 2.0
#: The reason given until the first reconcile pass is done.
FIRST_RECONCILE_PENDING = "first reconcile pending"


class NodeRole(StrEnum):
    """What this node does in a fleet sharing one database."""

    LEADER = "leader"  # runs the reconciler and the scheduler
    FOLLOWER = "follower"  # serves the API and runs steps; another node leads


@dataclass(frozen=True, kw_only=True)
class ReadinessReport:
    """One answer to "can this node take traffic?"; ``reasons`` says why not."""

    reasons: tuple[str, ...]
    role: NodeRole

    @property
    def ready(self) -> bool:
        """True when nothing holds the node back."""
        return not self.reasons


def pass_counts(error: BaseException | None) -> bool:
    """Whether a reconcile pass that ended with ``error`` (None: it ended normally) counts as
    the first pass done: every pass does, except one the database stopped."""
    return not isinstance(error, StoreUnavailable)


class Readiness:
    """The readiness of one node: the first pass, and a cached check of its database."""

    def __init__(
        self,
        ping: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = CHECK_TTL,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self._ping = ping
        self._clock = clock
        self._ttl = ttl
        self._timeout = timeout
        self._first_pass_done = False
        self._checked_at: float | None = None
        self._database_error: str | None = None
        self._pinging: concurrent.futures.Future[None] | None = None  # the one thread checking

    @property
    def first_pass_done(self) -> bool:
        """True once a reconcile pass that counts has ended."""
        return self._first_pass_done

    def pass_ended(self, error: BaseException | None = None) -> bool:
        """Record the end of a reconcile pass; True when it made the first pass done just now."""
        if self._first_pass_done or not pass_counts(error):
            return False
        self._first_pass_done = True
        return True

    async def report(self, role: NodeRole) -> ReadinessReport:
        """Why this node is not ready, if it is not (on the event loop; never blocks it)."""
        reasons = [] if self._first_pass_done else [FIRST_RECONCILE_PENDING]
        error = await self.database_error()
        if error is not None:
            reasons.append(f"database unreachable: {error}")
        return ReadinessReport(reasons=tuple(reasons), role=role)

    async def database_error(self) -> str | None:
        """Why the database does not answer (None when it does), at most :data:`CHECK_TTL` old."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._ttl:
            return self._database_error
        if self._pinging is None or self._pinging.done():
            self._pinging = _in_thread(self._ping)
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._pinging), self._timeout)
        except TimeoutError:
            error: str | None = f"no answer within {self._timeout:g} s"
        except Exception as exc:  # any failure to answer is the reason, whatever its type
            error = " ".join(str(exc).split()) or type(exc).__name__
        else:
            error = None
        self._checked_at, self._database_error = self._clock(), error
        return error


def _in_thread(fn: Callable[[], None]) -> concurrent.futures.Future[None]:
    """Run ``fn`` on a new daemon thread (a hung check must not hold up the exit).

    The future is running from the start: a probe that gives up waiting cancels its own wait,
    never the check other probes share."""
    future: concurrent.futures.Future[None] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the waiter, which reports it
            future.set_exception(exc)
        else:
            future.set_result(None)

    threading.Thread(target=run, name="agentflow-readiness", daemon=True).start()
    return future
