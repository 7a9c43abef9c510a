"""The composition root: ``agentflowd serve`` builds every part from its config and runs them.

One asyncio loop runs the API (uvicorn), the change detection (a watch on a local repository's
refs, or a jittered poll of a remote) and the reconcile loop. All git and reconcile work runs on
one dedicated thread (libgit2 objects are not thread-safe), so the loop never blocks on it.

Lifecycle, as systemd sees it (``Type=notify``):

* before anything else, a SQLite database is locked for this process (one daemon per file,
  :mod:`agentflowd.store.filelock`): a second daemon exits with code 2 and says who holds it;
* ``STATUS=listening on URL; first reconcile pending`` once the database is migrated, the source
  opened and the listener bound: ``/healthz`` answers from here on, ``/readyz`` says 503;
* ``READY=1`` only once the first reconcile pass is done (a pass the database stopped does not
  count, and is retried after the error's delay, doubling up to the poll interval), when
  ``/readyz`` turns 200 too (:mod:`agentflowd.node`); a slow first clone of a remote therefore
  counts against ``TimeoutStartSec``;
* ``STATUS=`` after every pass: revision, workflow count, failing count;
* ``WATCHDOG=1`` from the loop, only while the reconcile loop makes progress (a hung fetch stops
  the pings and systemd restarts us);
* SIGHUP: ``RELOADING=1``, re-read the config; a bad config keeps the old one; ``READY=1``
  (before the first pass, the reload happens without either: ``READY=1`` is the first pass's);
* SIGTERM/SIGINT: ``STOPPING=1``, finish the pass in flight, close, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflowd.auth import keys
from agentflowd.auth.authenticate import Authenticator
from agentflowd.auth.oidc import OidcVerifier
from agentflowd.cluster.listen import Channel, Listener
from agentflowd.cluster.listen import notify as cluster_notify
from agentflowd.cluster.membership import Membership
from agentflowd.config import DaemonConfig, load_config
from agentflowd.engine.engine import EngineObserver
from agentflowd.engine.triggers import TriggerIndex, TriggerTable
from agentflowd.errors import AgentFlowError, StoreUnavailable, UsageError
from agentflowd.node import NodeRole, Readiness
from agentflowd.observability import Metrics
from agentflowd.reconcile import (
    DedupSink,
    GitNotesSink,
    QueuedSink,
    Reconciler,
    StatusSink,
    SyncOutcome,
)
from agentflowd.reconcile.forges import Forge, ForgeSink
from agentflowd.sdnotify import notify
from agentflowd.source.git import GitSource
from agentflowd.store import Store, open_store
from agentflowd.store.filelock import DatabaseLock, sqlite_file
from router import Budgets, Router, RouterError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentflowd.engine import Engine, Journal
    from agentflowd.engine.triggers import ScheduleEntry, Scheduler
    from sandbox import SandboxEngine
    from sandbox.isolate import ProcessSandbox
    from sandbox.python import PythonRuntime

__all__ = ["Daemon", "utcnow"]

log = logging.getLogger("agentflowd")


def utcnow() -> datetime:
    """The daemon's clock: timezone-aware UTC."""
    return datetime.now(UTC)


class Daemon:
    """One running agentflowd."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        reload: Callable[[], DaemonConfig] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self._reload = reload
        self._git = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentflow-git")
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._noticed_at: float | None = None
        self._heartbeat = time.monotonic()
        self.readiness = Readiness(self._ping_store)
        self._store_failures = 0  # passes in a row the database stopped (for the backoff)
        self.store: Store
        self.reconciler: Reconciler
        self.router: Router | None = None
        self.engine: Engine | None = None
        self.journal: Journal | None = None
        self.sandbox: SandboxEngine | None = None
        self.processes: ProcessSandbox | None = None
        self.scheduler: Scheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.triggers = TriggerTable()
        self._trigger_index = TriggerIndex()
        self._trigger_refreshes = 0  # tickets, so an older refresh never undoes a newer one
        self._trigger_applied = 0
        self.webhook_secret: str | None = None
        self.metrics_auth = config.metrics_auth
        self.network_ceiling: tuple[str, ...] = tuple(config.api_network_ceiling)
        self.oidc = config.oidc
        self.auth: Authenticator
        self.address: tuple[str, int] | None = None
        self.last_outcome: SyncOutcome | None = None
        self.membership: Membership | None = None
        self._listener: Listener | None = None
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._recovered = False  # interrupted revisions marked (by the first leader pass)
        self._serving = False  # run() is past start-up: role changes start or stop tasks now
        self._applied = asyncio.Event()  # the leader applied a revision (a follower's readiness)
        self._database: sa.Engine | None = None  # the store's SQL engine, once the engine runs

    # -- what the API uses ------------------------------------------------------------------

    @property
    def role(self) -> NodeRole:
        """Leader (reconciles, schedules, posts statuses) or follower (API and steps)."""
        return self.membership.role if self.membership is not None else NodeRole.FOLLOWER

    def settings(self) -> dict[str, Any]:
        """The running configuration as an admin may read it (secrets masked)."""
        return self.config.public_view()

    def run_git(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` on the git thread; with several nodes, under the cluster's reconcile
        lock (a pass, a sync or a rollback asked of any node never overlaps another's)."""
        return asyncio.get_running_loop().run_in_executor(self._git, self._locked, fn)

    def _locked(self, fn: Callable[[], Any]) -> Any:
        if self.membership is None:
            return fn()  # (starting up: nothing reconciles yet)
        with self.membership.coordinator.exclusive():
            return fn()

    def request_sync(self, noticed_at: float | None = None) -> None:
        """Ask for a reconcile pass now (a watch event, a webhook, an operator); on a
        follower, the leader is asked (safe from any thread)."""
        if self.role is not NodeRole.LEADER and self._database is not None:
            threading.Thread(
                target=_quietly, args=(cluster_notify, self._database, Channel.SYNC), daemon=True
            ).start()
            return
        if self._noticed_at is None:
            self._noticed_at = noticed_at or time.monotonic()
        self._wake.set()

    def stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def _ping_store(self) -> None:
        """Readiness's database check (on its own thread)."""
        self.store.ping()

    def _lock_database(self) -> DatabaseLock | None:
        """Lock a SQLite database for this process (PostgreSQL needs no lock)."""
        database = sqlite_file(self.config.database_url)
        if database is None:
            return None
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return DatabaseLock.acquire(database)

    def _open(self) -> None:
        """Database, source, sinks, reconciler (on the git thread: it owns pygit2 objects)."""
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = open_store(cfg.database_url)
        source = GitSource(cfg.repo, branch=cfg.branch, path=cfg.path, state_dir=cfg.state_dir)
        _refuse_another_repository(self.store, source)
        source.repository()
        sinks = self._sinks(cfg, source)
        self.reconciler = Reconciler(
            source=source,
            store=self.store,
            sinks=sinks,
            clock=self.clock,
            prune=cfg.prune,
            api_url=self._api_url(),
            observe_fetch=self.metrics.fetch_duration.observe,
            push_notes=cfg.push_notes,
        )
        self.webhook_secret = _read_secret(cfg)
        self.router = _make_router(cfg, self.store, metrics=self.metrics)
        if cfg.bootstrap_key_file is not None:
            keys.bootstrap(
                self.store.access, _read_key_file(cfg.bootstrap_key_file), now=self.clock()
            )
        oidc = OidcVerifier(cfg.oidc) if cfg.oidc is not None else None
        self.auth = Authenticator(self.store.access, clock=self.clock, oidc=oidc)

    def _sync(self) -> SyncOutcome:
        """A pass (on the git thread, under the cluster's reconcile lock). A node's first pass
        as leader first marks revisions a previous leader left half-applied: a follower must
        not, since the leader may be applying them right now."""
        if not self._recovered:
            for record in self.reconciler.recover():
                log.warning("revision %s of %s was interrupted", record.id, record.sha[:12])
            self._recovered = True
        return self.reconciler.sync()

    def _sinks(self, cfg: DaemonConfig, source: GitSource) -> list[StatusSink]:
        """Git notes (in order, on the git thread) and each forge (queued, on its own thread)."""
        sinks: list[StatusSink] = [
            DedupSink(_Counted(GitNotesSink(source.repo_path), self.metrics))
        ]
        for target in cfg.statuses:
            forge = ForgeSink(
                forge=Forge(target.forge),
                base_url=target.url,
                repo=target.repo,
                token=target.token(),
            )
            sinks.append(DedupSink(QueuedSink(_Counted(forge, self.metrics))))
        return sinks

    def _close_sinks(self, sinks: list[StatusSink], drain_seconds: float = 10.0) -> None:
        for sink in sinks:
            inner = sink.inner if isinstance(sink, DedupSink) else sink
            if isinstance(inner, QueuedSink):
                inner.close(drain_seconds)

    def _api_url(self) -> str | None:
        if self.config.api_url:
            return self.config.api_url
        if self.address is None:
            return None
        host, port = self.address
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def _bind(self) -> socket.socket:
        cfg = self.config
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP
        # (base_events._set_nodelay). With proto 0 every keep-alive answer written in two
        # sends (head, then body) waited for the client's delayed ACK: 44 ms a request.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on {cfg.listen}: {exc.strerror}") from exc
        sock.listen(128)
        sock.setblocking(False)
        self.address = sock.getsockname()[:2]
        return sock

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        lock = self._lock_database()
        try:
            return await self._serve()
        finally:
            if lock is not None:
                lock.release()  # after the store is closed: the next daemon may start

    async def _serve(self) -> int:
        import uvicorn

        from agentflowd.api.app import create_app

        loop = self._loop = asyncio.get_running_loop()
        sock = self._bind()
        try:
            await self.run_git(self._open)
        except Exception:
            sock.close()
            self._git.shutdown(wait=True)
            raise
        self.reconciler.api_url = self._api_url()
        await self._start_engine()
        config = uvicorn.Config(create_app(self), log_config=None, lifespan="off", access_log=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        ticks = asyncio.create_task(server.main_loop())
        for sig, handler in (
            (signal.SIGTERM, self.stop),
            (signal.SIGINT, self.stop),
            (signal.SIGHUP, lambda: asyncio.ensure_future(self._reload_config())),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
        log.info("agentflowd listening on %s", self._api_url())
        notify(f"STATUS=listening on {self._api_url()}; first reconcile pending")
        tasks = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._follow())]
        if self.membership is not None:
            tasks.append(asyncio.create_task(self.membership.run()))
            self._serving = True
            self._on_role(self.membership.role)
        try:
            await self._stop.wait()
        finally:
            notify("STOPPING=1")
            log.info("agentflowd stopping")
            await self._stop_leading()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await ticks
            await server.shutdown(sockets=[sock])
            sock.close()
            await self._stop_engine()
            self._git.shutdown(wait=True)  # let the pass in flight finish
            self._close_sinks(self.reconciler.sinks)  # post what is queued
            self.store.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return 0

    async def _start_engine(self) -> None:
        """The sandbox, the journal and the engine; resume what a previous run left."""
        from agentflowd.cluster import SqlCoordinator, new_node_id
        from agentflowd.engine import Engine, Journal, StepRunner, SystemClock
        from agentflowd.store import SqlStore
        from sandbox import SandboxEngine
        from sandbox.isolate import ProcessSandbox
        from sandbox.pybuild import default_cache_dir
        from sandbox.python import PythonRuntime

        if not isinstance(self.store, SqlStore):  # pragma: no cover - the daemon opens SQL
            return
        compiled = default_cache_dir() / "compiled"
        self.sandbox = SandboxEngine(compiled)
        self.processes = ProcessSandbox(compiled, max_idle=self.config.workers)
        python = PythonRuntime(self.sandbox, progress=lambda m: log.info("%s", m))
        self.journal = Journal(self.store.engine)
        runner = StepRunner(
            store=self.store,
            router=lambda: self.router,  # type: ignore[arg-type,return-value]
            sandbox=self.sandbox,
            processes=self.processes,
            python=python,
            today=lambda: self.clock().date(),
            isolation=self.config.isolation,
        )
        clock = SystemClock(self.clock)
        self._database = self.store.engine
        coordinator = SqlCoordinator(
            self.store.engine,
            lease_seconds=self.config.lease.total_seconds(),
            node=new_node_id(self.config.node_name),
            now=self.clock,
        )
        self.engine = Engine(
            store=self.store,
            log=self.journal,
            runner=runner,
            clock=clock,
            workers=self.config.workers,
            observer=_MetricsObserver(self.metrics),
            node=coordinator.node,
            fence=not coordinator.single,
        )
        await self.engine.start(resume=False)
        self.membership = Membership(
            coordinator, self.engine, clock=clock, on_role=self._on_role_soon
        )
        resumed = await self.membership.start()
        log.info(
            "node %s joined as %s; resumed %d unfinished execution(s)",
            coordinator.node,
            self.membership.role.value,
            resumed,
        )
        if not coordinator.single:
            self._listener = Listener(
                self.store.engine,
                [Channel.WORK, Channel.SYNC, Channel.WORKFLOWS, Channel.CANCEL],
                self._notified,
                asyncio.get_running_loop(),
            )
        from agentflowd.engine.triggers import Scheduler

        self.scheduler = Scheduler(self._fire_schedule, clock=self.clock)
        await self._refresh_triggers()
        if self.config.warm_python:  # build/compile it now, not when the first step needs it
            threading.Thread(
                target=_warm, args=(python,), name="agentflow-warm", daemon=True
            ).start()

    async def _stop_engine(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self.engine is not None:
            await self.engine.close()
        if self.membership is not None:  # hand what it drove over to the other nodes
            await self.membership.stop()
        if self.journal is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.journal.close)
        if self.processes is not None:
            self.processes.close()
        if self.sandbox is not None:
            self.sandbox.close()

    def _on_role_soon(self, role: NodeRole) -> None:
        """The membership's role changed (called on the loop)."""
        if self._serving or role is NodeRole.FOLLOWER:  # (before run() the tasks start there)
            self._on_role(role)

    def _on_role(self, role: NodeRole) -> None:
        """Start what only the leader runs, or stop it."""
        if role is NodeRole.LEADER and not self._leader_tasks:
            log.info("leading: reconciling, scheduling and posting statuses")
            self._leader_tasks = [
                asyncio.create_task(self._reconcile_loop()),
                asyncio.create_task(self._prune_audit()),
            ]
            if self.scheduler is not None:
                self._leader_tasks.append(asyncio.create_task(self.scheduler.run()))
            if not self.reconciler.source.remote:
                self._leader_tasks.append(asyncio.create_task(self._watch_local()))
        elif role is NodeRole.FOLLOWER and self._leader_tasks:
            log.warning("no longer leading: the reconciler and the scheduler stop here")
            asyncio.ensure_future(self._stop_leading())

    async def _stop_leading(self) -> None:
        tasks, self._leader_tasks = self._leader_tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self) -> None:
        """A follower is ready once the cluster has reconciled (the leader's pass is in the
        store): it serves what the leader applied. Looked at every second until then, and
        at once when the leader says it applied a revision."""
        while not self.readiness.first_pass_done:
            if self.role is NodeRole.FOLLOWER:
                await self._leader_applied()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), timeout=1.0)
            self._applied.clear()

    async def _leader_applied(self) -> None:
        try:
            state = await asyncio.get_running_loop().run_in_executor(
                None, self.store.source_state, self.reconciler.name
            )
        except AgentFlowError as exc:
            log.debug("cannot read the source's state: %s", exc)
            return
        if state is not None and state.last_applied_sha and self.readiness.pass_ended(None):
            log.info("the leader has reconciled %s: ready", state.last_applied_sha[:12])
            notify("READY=1", f"STATUS=following; revision {state.last_applied_sha[:12]}")

    def _notified(self, channel: Channel, _payload: str) -> None:
        """A notification from another node (on the loop)."""
        if channel is Channel.WORK and self.membership is not None:
            self.membership.wake()
        elif channel is Channel.SYNC and self.role is NodeRole.LEADER:
            self.request_sync()
        elif channel is Channel.WORKFLOWS:
            self.refresh_triggers()
            self._applied.set()
        elif channel is Channel.CANCEL and self.engine is not None:
            if _payload in self.engine.driven():
                asyncio.ensure_future(self.engine.cancel(_payload))

    async def forward_cancel(self, execution_id: str) -> bool:
        """Ask the other nodes to cancel ``execution_id`` (its owner does)."""
        if self._database is None or self._database.dialect.name != "postgresql":
            return False
        await asyncio.get_running_loop().run_in_executor(
            None, cluster_notify, self._database, Channel.CANCEL, execution_id
        )
        return True

    async def _reconcile_loop(self) -> None:
        """Pass on every wake-up (watch, webhook, API), and at least every poll interval."""

        def next_poll() -> float:
            # jitter, so a fleet of daemons does not poll a forge in lockstep
            return time.monotonic() + self.config.poll_seconds * random.uniform(0.9, 1.1)  # noqa: S311

        self.request_sync()  # a first pass at start (and when this node becomes leader)
        due = next_poll()
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            timeout = max(0.0, min(due - time.monotonic(), 10.0))  # wake at least every 10 s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            if self._stop.is_set():
                break
            if self._wake.is_set() or time.monotonic() >= due:
                self._wake.clear()
                error = await self._pass()
                due = next_poll() if error is None else time.monotonic() + self._retry_in(error)

    def _retry_in(self, error: StoreUnavailable) -> float:
        """Seconds until a pass the database stopped is tried again: the error's delay,
        doubling with every such pass in a row, at most the poll interval."""
        self._store_failures += 1
        return min(error.delay * 2.0 ** (self._store_failures - 1), self.config.poll_seconds)

    async def _pass(self) -> StoreUnavailable | None:
        """One reconcile pass; returns the database's error when it stopped the pass."""
        noticed, self._noticed_at = self._noticed_at, None
        started = time.perf_counter()
        try:
            outcome: SyncOutcome = await self.run_git(self._sync)
        except AgentFlowError as exc:
            self.metrics.reconcile_total.labels("error").inc()
            log.warning("reconcile failed: %s", exc)
            return self._pass_ended(exc, status=f"reconcile failed: {exc}")
        except Exception as exc:  # a bug must not kill the loop: log it, try again next pass
            self.metrics.reconcile_total.labels("error").inc()
            log.exception("reconcile crashed")
            return self._pass_ended(exc, status="reconcile crashed (see the log)")
        finally:
            if self.config.validate_refs and not self._stop.is_set():
                await self._validate_refs()
        self.last_outcome = outcome
        self._heartbeat = time.monotonic()
        if not outcome.noop:
            elapsed = time.perf_counter() - started
            self.metrics.reconcile_duration.observe(elapsed)
            state = outcome.state.value if outcome.state else "none"
            self.metrics.reconcile_total.labels(state).inc()
            self.metrics.last_sync.set(time.time())
            if noticed is not None:
                self.metrics.push_to_reconciled.observe(time.monotonic() - noticed)
            try:
                await self._publish_status(outcome)
            except AgentFlowError as exc:  # the database went away after the pass
                log.warning("cannot count the workflows for the status: %s", exc)
            self.refresh_triggers()
            if self._database is not None and self._database.dialect.name == "postgresql":
                await asyncio.get_running_loop().run_in_executor(
                    None, _quietly, cluster_notify, self._database, Channel.WORKFLOWS
                )
        # (a pass with changes has just published its STATUS)
        unchanged = f"revision {outcome.sha[:12]} applied" if outcome.noop else None
        return self._pass_ended(outcome.error, status=unchanged)

    def _pass_ended(
        self, error: BaseException | None, *, status: str | None = None
    ) -> StoreUnavailable | None:
        """Tell readiness (and systemd, with ``status``, the first time a pass counts); returns
        the database's error, if it stopped the pass."""
        if self.readiness.pass_ended(error):
            log.info("first reconcile pass done: ready")
            notify("READY=1", *([f"STATUS={' '.join(status.split())}"] if status else []))
        if isinstance(error, StoreUnavailable):
            return error
        self._store_failures = 0
        return None

    def refresh_triggers(self) -> None:
        """Rebuild the trigger table from the store (after applying, suspend, rollback...).

        Safe from any thread (synchronous API handlers run on worker threads)."""
        loop = self._loop
        if self.scheduler is not None and loop is not None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._refresh_triggers()))

    async def _refresh_triggers(self) -> None:
        self._trigger_refreshes += 1
        ticket = self._trigger_refreshes
        loop = asyncio.get_running_loop()
        try:
            table = await loop.run_in_executor(None, self._trigger_index.refresh, self.store)
        except AgentFlowError as exc:
            log.warning("cannot read the workflows' triggers: %s", exc)
            return
        if ticket < self._trigger_applied:
            return  # a later refresh has already set a newer table
        self._trigger_applied = ticket
        self.triggers = table
        if self.scheduler is not None:
            self.scheduler.update(self.triggers)

    async def _fire_schedule(self, entry: ScheduleEntry, slot: datetime) -> None:
        assert self.engine is not None
        record = await self.engine.run(
            entry.workflow,
            {"trigger": "schedule", "scheduled_at": slot.isoformat()},
            trigger="schedule",
            key=f"schedule:{entry.workflow}:{entry.index}:{slot.isoformat()}",
        )
        log.info("schedule of %s started execution %s (slot %s)", entry.workflow, record.id, slot)

    async def _validate_refs(self) -> None:
        patterns = self.config.validate_refs
        try:
            outcomes = await self.run_git(lambda: self.reconciler.validate_refs(patterns))
        except AgentFlowError as exc:
            log.warning("validating %s failed: %s", ", ".join(patterns), exc)
            return
        except Exception:  # never let validation take the reconcile loop down
            log.exception("validating %s crashed", ", ".join(patterns))
            return
        for outcome in outcomes:
            summary = outcome.record.summary if outcome.record else ""
            log.info("validated %s: %s", outcome.sha[:12], summary)

    async def _publish_status(self, outcome: SyncOutcome) -> None:
        workflows = await asyncio.get_running_loop().run_in_executor(
            None, self.store.workflow_heads
        )
        failing = sum(1 for w in workflows.values() if w.failing)
        phases = {
            "active": sum(1 for w in workflows.values() if not w.failing and not w.suspended),
            "failing": failing,
            "suspended": sum(1 for w in workflows.values() if w.suspended),
            "pinned": sum(1 for w in workflows.values() if w.pinned_revision),
        }
        for phase, count in phases.items():
            self.metrics.workflows.labels(phase).set(count)
        state = outcome.state.value if outcome.state else "unchanged"
        log.info(
            "revision %s %s: %s",
            outcome.sha[:12],
            state,
            outcome.record.summary if outcome.record else "",
        )
        notify(
            f"STATUS=revision {outcome.sha[:12]} {state}; {len(workflows)} workflows, "
            f"{failing} failing"
        )

    async def _watch_local(self) -> None:
        """Wake the reconcile loop when the followed branch's ref changes on disk."""
        import watchfiles

        gitdir = self.reconciler.source.repo_path
        branch_ref = self.reconciler.source.ref
        # a linked worktree's branch refs live in the main repository's git directory
        common_file = gitdir / "commondir"
        common = (
            (gitdir / common_file.read_text().strip()).resolve()
            if common_file.exists()
            else gitdir.resolve()
        )
        roots = {gitdir.resolve(), common}

        def relevant(_change: Any, path: str) -> bool:
            for root in roots:
                rel = os.path.relpath(path, root)
                if rel in (branch_ref, "packed-refs", "HEAD") or rel.startswith(branch_ref + "."):
                    return True
            return False

        # its own event: watchfiles sets the one it is given when the watch is cancelled (as
        # it is when this node stops leading), and the daemon's would stop the daemon
        stop = asyncio.Event()
        stopping = asyncio.ensure_future(self._stop.wait())
        stopping.add_done_callback(lambda _f: stop.set())
        try:
            async for _changes in watchfiles.awatch(
                *roots, watch_filter=relevant, stop_event=stop, step=20, debounce=400
            ):
                self.request_sync()
        finally:
            stopping.cancel()

    async def _prune_audit(self) -> None:
        """Drop audit rows older than ``audit_retention``, at start and then daily (leader)."""
        loop = asyncio.get_running_loop()
        while True:
            before = self.clock() - self.config.audit_retention_delta
            try:
                prune = functools.partial(self.store.access.prune_audit, before=before)
                dropped = await loop.run_in_executor(None, prune)
            except Exception as exc:  # (the database away: the next day tries again)
                log.warning("pruning the audit log failed: %s", exc)
            else:
                if dropped:
                    log.info("pruned %d audit rows older than %s", dropped, before.isoformat())
            await asyncio.sleep(24 * 3600)

    async def _watchdog(self) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if usec <= 0:
            return
        period = usec / 2e6
        while True:
            await asyncio.sleep(period)
            # progress: the loop iterated within the watchdog period (it wakes every <= 10 s)
            if time.monotonic() - self._heartbeat < usec / 1e6 + 10.0:
                notify("WATCHDOG=1")

    async def _reload_config(self) -> None:
        if self._reload is None:
            return
        # before the first pass systemd still waits for READY=1: that one is the pass's to send
        starting = not self.readiness.first_pass_done
        if not starting:
            notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            # everything that can fail first; then apply all of it, or none
            new = self._reload()
            fixed = ("repo", "branch", "path", "state_dir", "database", "listen")
            changed = [k for k in fixed if getattr(new, k) != getattr(self.config, k)]
            if changed:
                log.warning("%s changed: restart agentflowd to apply", ", ".join(changed))
                new = new.model_copy(update={k: getattr(self.config, k) for k in fixed})
            secret = _read_secret(new)
            sinks = self._sinks(new, self.reconciler.source)
            # keys are read again (rotations apply now); spend in flight stays in the same budgets
            router = _make_router(
                new,
                self.store,
                self.router.budgets if self.router else None,
                metrics=self.metrics,
            )
        except (AgentFlowError, RouterError) as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return
        finally:
            if not starting:
                notify("READY=1")
        old_sinks = self.reconciler.sinks
        self.config = new
        self.webhook_secret = secret
        self.router = router
        self.reconciler.sinks = sinks
        self.reconciler.prune = new.prune
        self.reconciler.push_notes = new.push_notes
        self.reconciler.api_url = self._api_url()
        self.network_ceiling = tuple(new.api_network_ceiling)
        threading.Thread(target=self._close_sinks, args=(old_sinks,), daemon=True).start()
        log.info("configuration reloaded")
        self.request_sync()


class _Counted:
    """Counts status writes per backend and result for the metrics."""

    def __init__(self, inner: StatusSink, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics

    def post(self, status: Any) -> None:
        try:
            self.inner.post(status)
        except Exception:
            self.metrics.status_writes.labels(self.name, "error").inc()
            raise
        self.metrics.status_writes.labels(self.name, "ok").inc()


def _refuse_another_repository(store: Store, source: GitSource) -> None:
    """A state directory belongs to one repository: pointing it at another would prune every
    workflow of the first. Refuse, and say what to do."""
    state = store.source_state("default")
    if state is not None and (state.url, state.branch, state.path) != (
        source.display_url,
        source.branch,
        source.path,
    ):
        was = f"{state.url} (branch {state.branch}{', path ' + state.path if state.path else ''})"
        raise UsageError(
            f"this state directory follows {was}; use another --state-dir (or database) for "
            f"{source.display_url}, or remove the old one"
        )


def _read_secret(cfg: DaemonConfig) -> str | None:
    if cfg.webhook_secret_file is not None:
        try:
            return cfg.webhook_secret_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise UsageError(f"cannot read webhook_secret_file: {exc.strerror}") from exc
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / "webhook-secret").exists():
        return (Path(creds) / "webhook-secret").read_text(encoding="utf-8").strip() or None
    return os.environ.get("AGENTFLOW_WEBHOOK_SECRET") or None


def serve(
    *,
    config_file: Path | None,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> int:
    """Load the config and run the daemon until SIGTERM."""
    config = load_config(file=config_file, environ=environ, flags=flags)
    from agentflowd.observability.logs import setup_logging

    setup_logging(config.log_format)

    def reload() -> DaemonConfig:
        return load_config(file=config_file, environ=environ, flags=flags)

    daemon = Daemon(config, reload=reload)
    return asyncio.run(daemon.run())


def _make_router(
    cfg: DaemonConfig,
    store: Store,
    budgets: Budgets | None = None,
    *,
    metrics: Metrics | None = None,
) -> Router:
    """The LLM router of ``cfg.router``, its ledger and budgets in ``store``; says which
    providers are not configured, and what happens to their routes."""
    from dataclasses import replace

    from agentflowd.llm import StoreLedger, budget_seed
    from router.config import build_router
    from router.config import load_config as load_router_config

    settings = load_router_config(cfg.router)
    if cfg.llm_mock:
        settings = replace(settings, mock_when_unconfigured=True)
    router, missing = build_router(
        settings,
        ledger=StoreLedger(store, metrics),
        budgets=budgets or Budgets(seed=budget_seed(store)),
    )
    for name, why in sorted(missing.items()):
        fate = "the mock provider answers its routes" if cfg.llm_mock else "its routes are skipped"
        log.warning("LLM provider %s is not configured (%s): %s", name, why, fate)
    return router


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn``; a failure is logged, not raised (a notification lost costs latency only)."""
    try:
        fn(*args)
    except Exception as exc:
        log.warning("could not notify the other nodes: %s", exc)


def _warm(python: PythonRuntime) -> None:
    try:
        python.component()
    except Exception:  # the first Python step reports it in its own outcome
        log.exception("cannot prepare the Python agent runtime")


class _MetricsObserver(EngineObserver):
    """The engine's reports, as Prometheus metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # reported at every step's start and end: the label lookups are made once
        self._running = metrics.executions_active.labels("running")
        self._queued = metrics.executions_active.labels("queued")

    def execution_started(self, trigger: str) -> None:
        self.metrics.executions_started.labels(trigger).inc()

    def execution_finished(self, trigger: str, result: str, seconds: float) -> None:
        self.metrics.executions_total.labels(trigger, result).inc()
        self.metrics.execution_duration.labels(result).observe(seconds)

    def queue_wait(self, seconds: float) -> None:
        self.metrics.queue_wait.observe(seconds)

    def step_finished(self, result: str, seconds: float) -> None:
        self.metrics.steps_total.labels(result).inc()
        self.metrics.step_duration.observe(seconds)

    def active(self, running: int, queued: int, busy_workers: int) -> None:
        self._running.set(running)
        self._queued.set(queued)
        self.metrics.workers_busy.set(busy_workers)


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read bootstrap_key_file {path}: {exc.strerror}") from exc
