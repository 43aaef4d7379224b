"""Leader jobs through a database outage: one warning per outage, not a traceback a turn."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tasks_server.jobs import LeaderJob
from tasks_server.store.base import Leader, StoreUnavailable


class Away:
    """A store whose database does not answer: every look for the leader role fails."""

    def __init__(self, turns: int) -> None:
        self.asked = 0
        self.turns = turns
        self.done = asyncio.Event()

    async def leader(self, name: str) -> Leader | None:
        self.asked += 1
        if self.asked >= self.turns:
            self.done.set()
        raise StoreUnavailable("connection refused")


class Probe(LeaderJob):
    name = "probe"

    async def work(self) -> int:
        return 0


async def test_an_outage_is_logged_once_not_at_every_turn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks_server")
    store = Away(turns=20)
    job = Probe(store, period_s=0.001)  # type: ignore[arg-type]
    job.start()
    try:
        async with asyncio.timeout(10):
            await store.done.wait()
    finally:
        await job.stop()
    records = [r for r in caplog.records if r.name == "tasks_server.jobs"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in records] == [
        ("WARNING", "probe: the database is unavailable", None)
    ]
    assert records[0].__dict__["error"] == "connection refused"
