"""StoreClock: the store's clock advanced by the monotonic clock, read again now and then."""

from __future__ import annotations

import asyncio

import pytest

from tasks_server import clock as clock_module
from tasks_server.clock import SAMPLES, StoreClock


class Source:
    """A store clock read over round trips of the given lengths (s), then 0 s ones."""

    def __init__(
        self, mono: list[float], trips: list[float] | None = None, *, late: bool = False
    ) -> None:
        self.mono = mono
        self.trips = list(trips or [])
        self.late = late  # the store reads its clock at the very end of a trip, not its start
        self.store_ms = 1_000_000
        self.reads = 0
        self.fail = False

    async def __call__(self) -> int:
        self.reads += 1
        if self.fail:
            raise ConnectionRefusedError("the database is away")
        trip = self.trips.pop(0) if self.trips else 0.0
        if self.late:
            self.mono[0] += trip
        read = self.store_ms + round((self.mono[0] - 100.0) * 1000)
        if not self.late:
            self.mono[0] += trip
        return read


async def test_it_follows_the_store_not_the_wall_clock() -> None:
    mono = [100.0]
    clock = StoreClock(Source(mono), monotonic=lambda: mono[0])
    await clock.sync()
    assert clock() == 1_000_000
    mono[0] += 2.5
    assert clock() == 1_002_500  # a step of the wall clock changes nothing here
    await clock.aclose()


async def test_it_keeps_the_read_with_the_shortest_round_trip() -> None:
    mono = [100.0]
    source = Source(mono, trips=[0.040, 0.002, 0.030])
    clock = StoreClock(source, monotonic=lambda: mono[0])
    await clock.sync()
    assert source.reads == SAMPLES
    # The 2 ms trip's end: behind by 2 ms (a 40 ms one would be behind by 40).
    assert clock() - source.store_ms - round((mono[0] - 100.0) * 1000) == -2
    await clock.aclose()


async def test_it_never_runs_ahead_of_the_store() -> None:
    """Read at the end of the trip, the store's clock is matched exactly; at any earlier
    moment, this clock trails it: a task is never fired before its time."""
    mono = [100.0]
    source = Source(mono, trips=[0.004] * SAMPLES, late=True)
    clock = StoreClock(source, monotonic=lambda: mono[0])
    await clock.sync()
    assert clock() - source.store_ms - round((mono[0] - 100.0) * 1000) == 0
    await clock.aclose()


async def test_it_reads_the_store_again_and_keeps_the_offset_while_it_is_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clock_module, "RESYNC_S", 10.0)
    mono = [100.0]
    source = Source(mono)
    clock = StoreClock(source, monotonic=lambda: mono[0])
    await clock.sync()
    source.store_ms += 40  # the store's clock ran 40 ms ahead meanwhile
    mono[0] = 112.0
    assert clock() == 1_012_000  # resync starts in the background
    await asyncio.sleep(0)
    assert clock() == 1_012_040 and source.reads == 2 * SAMPLES
    source.fail = True
    mono[0] = 130.0
    clock()
    await asyncio.sleep(0)
    assert source.reads == 2 * SAMPLES + 1 and clock() == 1_030_040  # the last offset holds
    await clock.aclose()
