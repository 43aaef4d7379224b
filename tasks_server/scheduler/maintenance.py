"""Maintenance of what this process holds: leases renewed, other processes' changes caught up.

A lease outlives its holder by at most `LEASE_MS`: the holder renews its leases every
`RENEW_MS` (the same share of a shorter lease), and a crash loses nothing, since every RUNNING
task is claimed again at its own time once its lease expired (or at once, when a lone server
starts and clears them). The API tells the local scheduler of a change at once; a change made
in another process reaches the holder as its store's notice, or, in cluster mode, when the
holder compares its leases' versions every `RECONCILE_MS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tasks_server.scheduler.background import Background
from tasks_server.scheduler.held import Holder, Holdings, Wakeup
from tasks_server.service import Service

log = logging.getLogger(__package__)  # one log for the scheduler's parts

LEASE_MS = 60_000  # a lease outlives its holder by at most this long
RENEW_MS = 10_000
RECONCILE_MS = 250  # cluster mode: how soon a change made in another process reaches its holder


class Maintenance(Service):
    name = "scheduler-maintenance"

    def __init__(
        self,
        holder: Holder,
        holdings: Holdings,
        wakeup: Wakeup,
        background: Background,
        *,
        cluster: bool,
        monotonic: Callable[[], float] = time.monotonic,
        sweep: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(log, background.outage)
        self._holder = holder
        self._holdings = holdings
        self._wakeup = wakeup
        self._background = background
        self._cluster = cluster
        self._monotonic = monotonic
        self._renew_ms = holder.lease_ms * RENEW_MS // LEASE_MS  # the same share of the lease
        self._last_renewal = monotonic()
        self._sweep = sweep

    async def pause(self) -> None:
        interval = RECONCILE_MS if self._cluster else self._renew_ms
        await asyncio.sleep(interval / 1000)

    async def run_once(self) -> None:
        """Reconcile (in cluster mode), and renew the leases once a renewal is due; then too,
        queue the dependency callbacks a process that stopped left to queue."""
        if self._cluster:
            await self._reconcile()
        if self._monotonic() - self._last_renewal >= self._renew_ms / 1000:
            self._last_renewal = self._monotonic()
            holder = self._holder
            await holder.store.renew(holder.id, self._holdings.ids(), holder.lease_ms)
            if self._sweep is not None:
                await self._sweep()

    def notice(self, queue_id: str, version: int | None) -> None:
        """Another process changed a task (`version` None: deleted), as its store announces
        it: catch up now rather than at the next reconcile or poll."""
        if self._background.stopping:
            return
        held = self._holdings.get(queue_id)
        if held is None:
            self._wakeup.claim()  # it may have become due soon (execute now, earlier)
        elif version is None or version != held.row.version:
            self._background.spawn(self._catch_up(queue_id), f"notice-{queue_id}")

    def resync(self) -> None:
        """Notices may have been lost (the store listens again after its session ended): claim
        now rather than at the next poll; held tasks are compared at the next reconcile."""
        if not self._background.stopping:
            self._wakeup.claim()

    async def _catch_up(self, queue_id: str) -> None:
        row = await self._holder.store.reload(queue_id)
        held = self._holdings.get(queue_id)
        if held is not None and (row is None or row.version != held.row.version):
            self._holdings.changed(queue_id, row)

    async def _reconcile(self) -> None:
        """Catch up with changes made by other processes to the tasks held here."""
        if not len(self._holdings):
            return
        holder = self._holder
        current = await holder.store.leased_versions(holder.id)
        for queue_id, held in self._holdings.items():
            version = current.get(queue_id)
            if held.recording or (version is not None and version[1] == held.row.version):
                continue
            self._holdings.changed(queue_id, await holder.store.reload(queue_id))
