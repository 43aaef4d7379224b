"""One base for the loops that run beside the API: the scheduler's parts, leader jobs, backups.

A service runs `run_once` turn after turn, from `start` until `stop`, waiting before each turn
(`pause`: a period, a due time, a wake-up). A turn that fails is logged (the database being
away, once per outage) and the next one comes as usual: a loop survives its own errors. A loop
that dies all the same stops the process with a CRITICAL line, rather than leave a server
that answers but no longer does that work. Its task is referenced until it ends, so it is
neither collected mid-turn nor its failure lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from tasks_server.logs import OutageLog
from tasks_server.store.base import StoreUnavailable


class Service:
    name: str  # the loop's task name, and what its log lines are about

    def __init__(self, log: logging.Logger, outage: OutageLog | None = None) -> None:
        self._log = log
        self._outage = outage or OutageLog(log, f"{self.name}: the database is unavailable")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def run_once(self) -> object:
        """One turn of the work."""
        raise NotImplementedError

    async def pause(self) -> None:
        """Wait until the next turn is due."""
        raise NotImplementedError

    async def run_forever(self) -> None:
        while True:
            await self.pause()
            await self._guarded(self.run_once(), self.name)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run_forever(), name=self.name)
        self._task.add_done_callback(self._died)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _guarded(self, turn: Awaitable[object], what: str) -> None:
        """Await `turn`, logging its failure instead of raising it."""
        try:
            await turn
        except StoreUnavailable as exc:
            self._outage.failed(exc, action=f"{what}_unavailable")
        except Exception:
            self._log.exception("%s failed", what, extra={"action": f"{what}_failed"})

    def _died(self, task: asyncio.Task[None]) -> None:
        if not self._stopping and not task.cancelled():
            self._log.critical("%s stopped: %r; exiting", task.get_name(), task.exception())
            raise SystemExit(1)
