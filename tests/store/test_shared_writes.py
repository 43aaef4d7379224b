"""Starts and outcomes written together: many attempts in one transaction, each answered as
its own (SPEC §16.3)."""

from __future__ import annotations

import asyncio

from ulid import ULID

from tasks_server.store.base import NewTask, Recorded, StoreError, TaskStore
from tests.store.conftest import add
from tests.store.test_outcomes import MINUTE_MS, current, ended

COUNT = 30


async def test_many_starts_and_outcomes_at_once_are_each_answered_as_their_own(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    for _ in range(COUNT):
        await add(store, owner, due=now - 10)
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=COUNT)
    stale = claimed[0]
    await store.release("a", stale.id)  # its start is refused, the others' are not
    starts = [store.started(holder="a", due=due, now=now) for due in claimed]
    numbers = await asyncio.gather(*starts)
    assert numbers == [None] + [1] * (COUNT - 1)
    running = claimed[1:]
    results = [
        store.record(holder="a", due=due, result=ended(1, now + n), keep=10)
        for n, due in enumerate(running)
    ]
    assert await asyncio.gather(*results) == [True] * len(running)
    for n, due in enumerate(running):
        row = await current(store, due.id)
        assert (row.state, row.estimate_end_at, row.in_flight) == ("SUCCESS", now + n, False)
    assert (await current(store, stale.id)).attempts == 0
    kept, counted = (await store.active_counts())[owner]
    assert kept == counted == 1  # the outcomes of one statement counted once each


async def test_a_faulty_outcome_among_many_fails_alone(store: TaskStore, owner: str) -> None:
    """A callback whose id is taken cannot be inserted: that outcome's write fails, and the
    others written with it still apply."""
    now = await store.now()
    taken = await add(store, owner, due=now + 10 * MINUTE_MS)
    for _ in range(4):
        await add(store, owner, due=now - 10)
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=4)
    for due in claimed:
        assert await store.started(holder="a", due=due, now=now) == 1

    def callback(queue_id: str) -> NewTask:
        return NewTask(queue_id, now, now, 0, b"sealed-callback", None)

    writes = [
        store.record(
            holder="a",
            due=due,
            result=ended(1, now + 5),
            keep=10,
            callback=callback(taken.id if n == 2 else str(ULID())),
        )
        for n, due in enumerate(claimed)
    ]
    answers = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(a) for a in answers] == [Recorded, Recorded, StoreError, Recorded]
    for n, due in enumerate(claimed):
        row = await current(store, due.id)
        assert row.state == ("RUNNING" if n == 2 else "SUCCESS")
        assert (row.callback_id is None) == (n == 2)
