"""This node's part in the cluster: its lease renewed, work claimed, the leader elected.

:class:`Membership` runs on the daemon's loop around a :class:`Coordinator` (blocking calls go
to a thread) and the engine:

* **heartbeat** — the node's lease is renewed every third of its length. A renewal that fails
  (the database is away) is retried at the next beat; once the lease may have expired — its
  last renewal's send time plus its length, by this node's monotonic clock, so a slow answer
  only shortens it — the node *fences* itself: the engine stops driving every execution
  (another node may take them over), the node leaves the leadership, and it joins again under
  a new id when the database answers. SQLite is one node: nothing can take its work, it never
  fences itself.
* **claims** — at start, at every beat, when a notification says work was released, and at
  the moment the next lease of a node that owns work expires (each claim says when): a dead
  node's executions are taken over right after its lease ends, not a beat later.
* **election** — the leader renews its lease at each beat; a follower tries to take the lease
  over when it expires. A leader that cannot renew before its lease may expire steps down.
  Roles are handed to ``on_role``: the daemon starts or stops the reconciler and the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentflowd.cluster.base import Coordinator, NodeRole
from agentflowd.engine.clock import Clock
from agentflowd.engine.engine import Engine

__all__ = ["Membership"]

log = logging.getLogger(__name__)

#: Claimed in one go (a node with a thousand executions to resume claims them in batches).
BATCH = 200
#: Safety margin (seconds) before a lease's local end: fence, or step down, this much early.
MARGIN = 0.5


class Membership:
    """One node's membership in the cluster (see the module docstring)."""

    def __init__(
        self,
        coordinator: Coordinator,
        engine: Engine,
        *,
        clock: Clock,
        on_role: Callable[[NodeRole], None] = lambda _role: None,
    ) -> None:
        self.coordinator = coordinator
        self.engine = engine
        self.clock = clock
        self.on_role = on_role
        self.role = NodeRole.FOLLOWER
        self.fenced = False
        self.unavailable: BaseException | None = None  # the last error of the database
        self.takeovers = 0  # executions claimed after start (for metrics and tests)
        self._valid_until = 0.0  # monotonic: this node's lease may have expired after it
        self._leads_until = 0.0  # monotonic: the leader's lease, while this node holds it
        self._claim_at: float | None = None  # monotonic: when a claim is due next
        self._elect_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentflow-lease")

    @property
    def lease(self) -> float:
        return self.coordinator.lease_seconds

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        # on a thread of its own: behind the loop's shared executor (API reads, engine reads:
        # ~6 threads on 2 cores) a renewal could wait its whole lease under load, and every
        # node would fence itself
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Join, claim what no live node drives, run for leader. Returns executions taken."""
        sent = self.clock.monotonic()
        await self._db(self.coordinator.join)
        self._valid_until = sent + self.lease
        self.engine.node = self.coordinator.node
        taken = await self.claim()
        await self.elect()
        return taken

    async def stop(self) -> None:
        """Hand this node's executions and leadership over (after the engine stopped)."""
        self._stopping = True
        self._set_role(NodeRole.FOLLOWER)
        try:
            driven = self.engine.driven()
            await self._db(self.coordinator.release, driven)
            await self._db(self.coordinator.leave)
            if driven:
                log.info("handed %d execution(s) over to the other nodes", len(driven))
        except Exception as exc:  # the database is away: the leases expire instead
            log.warning("could not hand work over (it is taken over at lease expiry): %s", exc)
        finally:
            self._thread.shutdown(wait=False)

    def wake(self) -> None:
        """Claim now (a notification: executions were released or created unowned)."""
        self._claim_at = self.clock.monotonic()
        self._wake.set()

    async def run(self) -> None:
        """Beat, claim and elect until cancelled."""
        beat = self.lease / 3
        next_beat = self.clock.monotonic() + beat
        while not self._stopping:
            now = self.clock.monotonic()
            due = min(t for t in (next_beat, self._claim_at, self._elect_at) if t is not None)
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=due - now)
                continue
            if now >= next_beat:
                next_beat = now + beat
                await self.beat()
            if self._claim_at is not None and now >= self._claim_at and not self.fenced:
                await self.claim()
            if self._elect_at is not None and now >= self._elect_at and not self.fenced:
                await self.elect()

    # -- the parts, one call each (tests drive them directly) --------------------------------

    async def beat(self) -> None:
        """Renew this node's lease (and the leader's, when it leads); fence when it is lost."""
        if self.fenced:
            await self._rejoin()
            return
        sent = self.clock.monotonic()
        try:
            alive = await self._db(self.coordinator.renew)
        except Exception as exc:
            self._unreachable(exc)
            if not self.coordinator.single and self.clock.monotonic() >= self._valid_until - MARGIN:
                await self.fence("its lease could not be renewed in time")
            elif (
                self.role is NodeRole.LEADER
                and self.clock.monotonic() >= self._leads_until - MARGIN
            ):
                self._set_role(NodeRole.FOLLOWER)
            return
        self.unavailable = None
        if alive or self.coordinator.single:
            self._valid_until = sent + self.lease
        else:
            await self.fence("its lease expired")
            return
        if self.role is NodeRole.LEADER:
            await self.elect()
        if not self.coordinator.single:
            await self.claim()  # what is free now, and when the next owner's lease ends

    async def claim(self) -> int:
        """Take over executions no live node drives; schedules the next claim."""
        self._claim_at = None
        taken = 0
        try:
            while True:
                claim = await self._db(self.coordinator.claim, BATCH)
                taken += await self.engine.adopt(claim.records)
                if len(claim.records) < BATCH:
                    break
        except Exception as exc:
            self._unreachable(exc)
            self._claim_at = self.clock.monotonic() + min(1.0, self.lease / 3)
            return taken
        if claim.recheck is not None:  # a node's lease ends then: take its work if it is dead
            self._claim_at = self.clock.monotonic() + claim.recheck + 0.05
        if taken:
            self.takeovers += taken
            log.info("claimed %d execution(s)", taken)
        return taken

    async def elect(self) -> None:
        """Take or renew the leader's lease; schedules the next attempt."""
        self._elect_at = None
        sent = self.clock.monotonic()
        try:
            leads = await self._db(self.coordinator.lead)
            left = None if leads else await self._db(self.coordinator.leader_expires_in)
        except Exception as exc:
            self._unreachable(exc)
            if (
                self.role is NodeRole.LEADER
                and self.clock.monotonic() >= self._leads_until - MARGIN
            ):
                self._set_role(NodeRole.FOLLOWER)
            self._elect_at = self.clock.monotonic() + min(1.0, self.lease / 3)
            return
        if leads:
            self._leads_until = sent + self.lease
            self._set_role(NodeRole.LEADER)
            return  # renewed at every beat
        self._set_role(NodeRole.FOLLOWER)
        # try again when the leader's lease ends (at once when there is no leader)
        self._elect_at = self.clock.monotonic() + (0.0 if left is None else left + 0.05)

    async def fence(self, why: str) -> None:
        """Stop driving everything: another node may own it now. Then join again."""
        log.error("this node fences itself (%s): it stops driving its executions", why)
        self.engine.abandon()
        self._set_role(NodeRole.FOLLOWER)
        self.fenced = True
        await self._rejoin()

    async def _rejoin(self) -> None:
        sent = self.clock.monotonic()
        try:
            await self._db(self.coordinator.rejoin)
        except Exception as exc:
            self._unreachable(exc)
            return  # the next beat tries again
        self._valid_until = sent + self.lease
        self.engine.node = self.coordinator.node
        self.fenced = False
        self.unavailable = None
        log.warning("this node joined again as %s", self.coordinator.node)
        await self.claim()
        await self.elect()

    def _unreachable(self, exc: BaseException) -> None:
        if self.unavailable is None:
            log.warning("the cluster's database is unreachable: %s", exc)
        self.unavailable = exc

    def _set_role(self, role: NodeRole) -> None:
        if role is self.role:
            return
        self.role = role
        log.info("this node is now %s", role.value)
        try:
            self.on_role(role)
        except Exception:  # the role holds; what failed to start says so itself
            log.exception("changing role to %s", role.value)
