"""Retention (SPEC §9.5): finished tasks older than RETENTION_FINISHED_MS go, attempts with them.

One process purges: the holder of the store's "retention" leader role (see `jobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tasks_server.jobs import LeaderJob
from tasks_server.store.base import TaskStore
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

PERIOD_S = 60.0
BATCH = 1_000  # rows per transaction, so the purge never holds the writer for long


class Retention(LeaderJob):
    name = "retention"

    def __init__(
        self,
        store: TaskStore,
        *,
        keep_ms: int,
        clock: Callable[[], int] = now_ms,
        period_s: float = PERIOD_S,
    ) -> None:
        super().__init__(store, period_s=period_s)
        self._keep_ms = keep_ms
        self._clock = clock

    async def work(self) -> int:
        """Purge the tasks finished more than `keep_ms` ago, in batches."""
        before = self._clock() - self._keep_ms
        total = 0
        while (deleted := await self._store.purge_finished(before=before, batch=BATCH)) > 0:
            total += deleted
            if deleted < BATCH:
                break
        if total:
            log.info("purged %d finished tasks", total, extra={"action": "retention_purged"})
        return total

    def start(self) -> None:
        if self._keep_ms > 0:  # 0 keeps finished tasks forever
            super().start()
