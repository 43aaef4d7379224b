"""StoreClock: the store's clock advanced by the monotonic clock, read again now and then."""

from __future__ import annotations

import asyncio

import pytest

from tasks_server import clock as clock_module
from tasks_server.clock import StoreClock


class Source:
    def __init__(self) -> None:
        self.store_ms = 1_000_000
        self.reads = 0
        self.fail = False

    async def __call__(self) -> int:
        self.reads += 1
        if self.fail:
            raise ConnectionRefusedError("the database is away")
        return self.store_ms


async def test_it_follows_the_store_not_the_wall_clock() -> None:
    mono = [100.0]
    source = Source()
    clock = StoreClock(source, monotonic=lambda: mono[0])
    await clock.sync()
    assert clock() == 1_000_000
    mono[0] += 2.5
    assert clock() == 1_002_500  # a step of the wall clock changes nothing here
    await clock.aclose()


async def test_it_reads_the_store_again_and_keeps_the_offset_while_it_is_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clock_module, "RESYNC_S", 10.0)
    mono = [0.0]
    source = Source()
    clock = StoreClock(source, monotonic=lambda: mono[0])
    await clock.sync()
    source.store_ms += 12_000 + 40  # the store's clock ran 40 ms ahead meanwhile
    mono[0] = 12.0
    assert clock() == 1_012_000  # resync starts in the background
    await asyncio.sleep(0)
    assert clock() == 1_012_040 and source.reads == 2
    source.fail = True
    mono[0] = 30.0
    clock()
    await asyncio.sleep(0)
    assert source.reads == 3 and clock() == 1_030_040  # the last offset holds
    await clock.aclose()
