"""Retention (SPEC §9.5): finished tasks older than RETENTION_FINISHED_MS go, attempts with them.

Per-minute stats older than the longest stats window go too, and flow-control keys idle for
`FLOW_IDLE_MS`: a key's row only keeps the next start its
rate allows, and once that start is past, a missing row means the same (a claim makes it
again). The margin keeps a busy key's row from churning, and a clock stepping back from
reviving a start already deleted.

Closed circuits of destinations unchanged for RETENTION_FINISHED_MS go as well (SPEC §18.1):
a destination has a row only while its failures matter.

One process purges: the holder of the store's "retention" leader role (see `jobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tasks_server.jobs import LeaderJob
from tasks_server.store.base import TaskStore
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

PERIOD_S = 60.0
BATCH = 1_000  # rows per transaction, so the purge never holds the writer for long
FLOW_IDLE_MS = 3_600_000
STATS_KEPT_MS = 25 * 3_600_000  # the stats route's longest window (24 h), and a margin


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
        """Purge the tasks finished more than `keep_ms` ago, the idle flow keys and closed
        circuits, in batches; the finished tasks purged."""
        now = self._clock()
        total = await _in_batches(self._store.purge_finished, now - self._keep_ms)
        if total:
            log.info("purged %d finished tasks", total, extra={"action": "retention_purged"})
        keys = await _in_batches(self._store.purge_idle_flows, now - FLOW_IDLE_MS)
        if keys:
            log.info("purged %d idle flow keys", keys, extra={"action": "flows_purged"})
        idle = await _in_batches(self._store.purge_idle_destinations, now - self._keep_ms)
        if idle:
            log.info("purged %d idle circuits", idle, extra={"action": "circuits_purged"})
        await self._store.purge_stats(before=now - STATS_KEPT_MS)
        return total

    def start(self) -> None:
        if self._keep_ms > 0:  # 0 keeps finished tasks forever
            super().start()


async def _in_batches(purge: Callable[..., Awaitable[int]], before: int) -> int:
    total = 0
    while (deleted := await purge(before=before, batch=BATCH)) > 0:
        total += deleted
        if deleted < BATCH:
            break
    return total
