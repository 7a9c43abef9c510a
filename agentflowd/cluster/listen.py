"""PostgreSQL notifications, delivered to the event loop: how nodes wake each other.

One thread per daemon holds a connection that ``LISTEN``s on the cluster's channels and hands
each notification to a callback on the loop. Nodes use them instead of polling: executions
released by a stopping node are claimed at once (``agentflow_work``), a reconcile pass asked of
a follower reaches the leader (``agentflow_sync``), followers re-read triggers after the
leader applied a revision (``agentflow_workflows``). A lost connection is opened again with
backoff; a notification sent meanwhile is missed, which costs only latency: each of these has
a periodic fallback (claims at lease expiry, the poll interval, the trigger refresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["Channel", "Listener", "notify"]

log = logging.getLogger(__name__)


class Channel(StrEnum):
    """The cluster's notification channels."""

    WORK = "agentflow_work"  # executions need an owner
    SYNC = "agentflow_sync"  # the leader should reconcile now
    WORKFLOWS = "agentflow_workflows"  # workflows changed: refresh triggers
    CANCEL = "agentflow_cancel"  # the execution's owner should cancel it (payload: its id)


def notify(engine: Engine, channel: Channel, payload: str = "") -> None:
    """Send a notification (PostgreSQL; nothing on SQLite, where there is one node)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel.value, "p": payload})


class Listener:
    """Listens on ``channels`` on its own thread; ``deliver(channel, payload)`` runs on the
    loop for each notification."""

    def __init__(
        self,
        engine: Engine,
        channels: Iterable[Channel],
        deliver: Callable[[Channel, str], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channels = list(channels)
        self.deliver = deliver
        self.loop = loop
        self._stop = threading.Event()
        self.connected = threading.Event()  # (for tests: listening now)
        self._thread = threading.Thread(target=self._run, name="agentflow-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    for channel in self.channels:
                        conn.execute(f'LISTEN "{channel.value}"')
                    self.connected.set()
                    delay = 0.1
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._hand(Channel(note.channel), note.payload)
            except Exception as exc:  # the database is away: listen again when it is back
                self.connected.clear()
                log.debug("listening for notifications failed: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _hand(self, channel: Channel, payload: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is stopping
            self.loop.call_soon_threadsafe(self.deliver, channel, payload)
