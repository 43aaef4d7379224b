"""What the scheduler's parts run beside their loops: tracked tasks and writes that persist.

The database can be away (full disk, restart, no free connection). A failed write of the
scheduler's own is retried with backoff for as long as it takes, never dropped while this
process lives: `persist` gives up only when stopping, or when an `instead` write (releasing
the task, so it runs again) succeeds after the quick retries, tried only while the write fails
for a reason other than the database being away. Every task spawned here is referenced until
it ends, and stopping waits for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tasks_server.logs import OutageLog
from tasks_server.store.base import StoreUnavailable

log = logging.getLogger(__package__)  # one log for the scheduler's parts

T = TypeVar("T")

WRITE_RETRIES_S = (0.05, 0.2, 0.5, 1.0, 2.0)  # backoff of a failed write; the last repeats


class Background:
    def __init__(self, outage: OutageLog) -> None:
        self.outage = outage  # one per scheduler: an outage is logged once, not once a part
        self._running: set[asyncio.Task[Any]] = set()
        self._halt = asyncio.Event()  # set when stopping: ends the pauses of retried writes

    @property
    def stopping(self) -> bool:
        return self._halt.is_set()

    def halt(self) -> None:
        """Stopping: writes are no longer retried, and say so by raising."""
        self._halt.set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    async def drain(self) -> None:
        """Wait for every task spawned, also those spawned meanwhile (outcome writes spawn
        follow-ups)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, StoreUnavailable):
            # An outage, not a fault: the registration waiting on it answers 503 and the API
            # logs the outage; the scheduler's own writes retry through one (`persist`).
            log.debug("%s failed: %s", task.get_name(), exc)
        else:
            log.error("%s failed", task.get_name(), exc_info=exc)

    async def persist(
        self,
        write: Callable[[], Awaitable[T]],
        instead: Callable[[], Awaitable[None]] | None = None,
    ) -> T | None:
        """Run `write` until it succeeds, pausing with backoff; None when, once the quick
        retries are spent, `instead` succeeded first (tried only while `write` fails for a
        reason other than the database being away). Raises only when stopping."""
        for turn in itertools.count():
            try:
                return await write()
            except Exception as exc:
                error = exc
            # Only for a write that fails while the database works: through an outage, even
            # one that lets some writes through, the outcome waits (releasing the task would
            # send the target again what it already has).
            transient = isinstance(error, StoreUnavailable)
            if instead is not None and turn >= len(WRITE_RETRIES_S) and not transient:
                try:
                    await instead()
                    return None
                except Exception as exc:
                    error = exc
            if self.stopping:
                raise error
            pause = WRITE_RETRIES_S[min(turn, len(WRITE_RETRIES_S) - 1)]
            if turn == 0:  # each write of an outage would say so: once per outage here
                self.outage.failed(error, action="write_retried")
            log.debug("database write failed, retrying in %.2f s: %s", pause, error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._halt.wait()
        raise AssertionError("unreachable")
