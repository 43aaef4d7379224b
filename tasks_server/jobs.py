"""Jobs that one process runs (retention, schedules, backups): the holder of a leader role.

Every process runs the loop and tries for the store's leader role at each turn, so when the
holder dies, or loses the role while alive, another takes over at its next turn. A job's
own failure is logged; the loop goes on (the database being away, once per outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Generic, TypeVar

from tasks_server.service import Service
from tasks_server.store.base import Leader, TaskStore

log = logging.getLogger(__name__)

R = TypeVar("R")


class LeaderService(Service, Generic[R]):
    """A loop whose turns do `work` only in the process holding the leader role `name`;
    subclasses say when a turn is due (`pause`)."""

    name: str  # the leader role, and the job's name in logs

    def __init__(self, store: TaskStore) -> None:
        super().__init__(log)
        self._store = store
        self.leader: Leader | None = None

    async def work(self) -> R:
        """One turn of the job, as the leader."""
        raise NotImplementedError

    async def run_once(self) -> R | None:
        """One turn if this process leads (taking the role when free); None when not.

        A leader that lost its role (on PostgreSQL, its lock's connection ended) steps back
        for this turn, so another process can take the role; it tries again next turn.
        """
        if self.leader is not None and not await self.leader.held():
            log.warning(
                "%s: lost the leader role", self.name, extra={"action": f"{self.name}_lost"}
            )
            self.leader.release()
            self.leader = None
            return None
        if self.leader is None:
            self.leader = await self._store.leader(self.name)
            if self.leader is None:
                return None
        return await self.work()

    async def stop(self) -> None:
        await super().stop()
        if self.leader is not None:
            self.leader.release()
            self.leader = None


class LeaderJob(LeaderService[int]):
    """A leader's job every `period_s`, or at once on `wake`; `work` says how much it did."""

    def __init__(self, store: TaskStore, *, period_s: float) -> None:
        super().__init__(store)
        self._period_s = period_s
        self._wake = asyncio.Event()
        self._wake.set()  # the first turn comes at once

    def wake(self) -> None:
        """Run the next turn now rather than at the end of the period."""
        self._wake.set()

    async def pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._period_s):
                await self._wake.wait()
        self._wake.clear()
