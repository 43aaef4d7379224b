"""Retention (SPEC §9.5): finished tasks older than RETENTION_FINISHED_MS go, attempts with them.

Every process runs the loop; only the one holding the store's "retention" leader role purges,
and a dead holder's role passes at the next period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tasks_server.store.base import Leader, TaskStore
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

PERIOD_S = 60.0
BATCH = 1_000  # rows per transaction, so the purge never holds the writer for long


class Retention:
    def __init__(
        self,
        store: TaskStore,
        *,
        keep_ms: int,
        clock: Callable[[], int] = now_ms,
        period_s: float = PERIOD_S,
    ) -> None:
        self._store = store
        self._keep_ms = keep_ms
        self._clock = clock
        self._period_s = period_s
        self.leader: Leader | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int | None:
        """Purge what is due if this process leads; the rows deleted, or None when not."""
        if self.leader is None:
            self.leader = await self._store.leader("retention")
            if self.leader is None:
                return None
        before = self._clock() - self._keep_ms
        total = 0
        while (deleted := await self._store.purge_finished(before=before, batch=BATCH)) > 0:
            total += deleted
            if deleted < BATCH:
                break
        if total:
            log.info("purged %d finished tasks", total, extra={"action": "retention_purged"})
        return total

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("retention purge failed", extra={"action": "retention_failed"})
            await asyncio.sleep(self._period_s)

    def start(self) -> None:
        if self._keep_ms > 0:
            self._task = asyncio.create_task(self._run_forever(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leader is not None:
            self.leader.release()
            self.leader = None
