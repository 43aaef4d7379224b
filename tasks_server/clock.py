"""The time every node of a shared database agrees on (SPEC §3.5, §12).

On PostgreSQL the database's clock is the reference: a node whose own clock is stepped or
drifts must neither fire the tasks it claims late or early nor register due times off by its
error. ``StoreClock`` reads the store's clock once, then advances it by this process's
monotonic clock (which no step moves), and reads it again every ``RESYNC_S`` so the two
cannot drift apart. It never runs ahead of the store's clock, so a request is never sent
before its time: it trails it by at most the shortest round trip of a read. A lone SQLite
server needs none of this: its own clock is the reference.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["StoreClock"]

log = logging.getLogger(__name__)

RESYNC_S = 60.0
SAMPLES = 3  # reads per sync


class StoreClock:
    """Epoch milliseconds on the store's clock; call ``sync`` once before use."""

    def __init__(
        self,
        source: Callable[[], Awaitable[int]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._monotonic = monotonic
        self._base_ms = 0.0  # store time minus monotonic time, in ms
        self._synced_at = float("-inf")
        self._resync: asyncio.Task[None] | None = None

    async def sync(self) -> None:
        """Read the store's clock a few times and keep the read with the shortest round trip:
        the store read its clock somewhere within it, so taking its end as that moment puts
        this clock behind the store's by at most the trip, never ahead."""
        best: tuple[float, float] | None = None  # round trip, base
        for _ in range(SAMPLES):
            before = self._monotonic()
            store_ms = await self._source()
            after = self._monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, store_ms - after * 1000)
        assert best is not None
        self._base_ms = best[1]
        self._synced_at = self._monotonic()

    def __call__(self) -> int:
        now = self._monotonic()
        if now - self._synced_at >= RESYNC_S and self._resync is None:
            self._resync = asyncio.get_running_loop().create_task(self._resync_once())
        return int(self._base_ms + now * 1000)

    async def _resync_once(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # the database is away: keep the last offset, try later
            log.warning("reading the database clock failed: %s", exc)
            self._synced_at = self._monotonic()
        finally:
            self._resync = None

    async def aclose(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
