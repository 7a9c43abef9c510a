"""The step threads: jobs in from the event loop, results back to it in batches.

``loop.run_in_executor`` costs two futures, a condition variable and one loop wake-up per step;
on two busy cores that hand-off was a large part of a trivial step's overhead. Here a job is a
queue entry, and finished steps are appended to a deque that the loop drains with one wake-up
for however many finished since it last looked.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["StepThreads"]

J = TypeVar("J")
T = TypeVar("T")


class StepThreads(Generic[J, T]):
    """``size`` threads calling ``work(job)``; ``deliver`` gets ``(token, result, error)``s on
    the loop, in batches (not when ``work`` returned None: it has seen to its result)."""

    def __init__(
        self,
        size: int,
        work: Callable[[J], Any],
        deliver: Callable[[list[tuple[T, Any, BaseException | None]]], None],
        loop: asyncio.AbstractEventLoop,
        *,
        name: str = "agentflow-step",
    ) -> None:
        self._work = work
        self._deliver = deliver
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[J, T] | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[T, Any, BaseException | None]] = collections.deque()
        self._waking = False
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: J, token: T) -> None:
        """Run ``job`` on a free thread; its result reaches ``deliver`` with ``token``."""
        self._jobs.put((job, token))

    def close(self) -> None:
        """Run nothing more (queued jobs are dropped: they run again after a restart)."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None or self._closed:
                return
            job, token = item
            try:
                result, error = self._work(job), None
            except BaseException as exc:
                result, error = None, exc
            if self._closed:
                return
            if result is None and error is None:
                continue  # the work saw to its result itself
            self._done.append((token, result, error))
            # append first, then look: the loop clears the flag before it drains, so a result
            # appended after a drain always finds the flag clear and wakes the loop again
            if not self._waking:
                self._waking = True
                try:
                    self._loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # the loop is closed: the daemon is stopping
                    return

    def _drain(self) -> None:
        self._waking = False
        done = self._done
        batch = []
        while done:
            batch.append(done.popleft())
        if batch and not self._closed:
            self._deliver(batch)
