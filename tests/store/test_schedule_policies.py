"""A fire's missed and overlap outcomes (SPEC §18.3), on both engines: a skipped fire time
moves the schedule on and registers nothing; `overlap` off skips while the last fire's task is
unfinished, also when two fire at once."""

from __future__ import annotations

import asyncio

from tasks_server.lifecycle import Change
from tasks_server.store.base import FireOutcome, TaskStore
from tests.store.test_schedules import MINUTE_MS, schedule, task


async def test_a_skipped_fire_time_moves_the_schedule_on_and_registers_nothing(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner)
    moved = row.next_run_at + MINUTE_MS
    outcome = await store.fire(
        row, fire_at=row.next_run_at, next_run_at=moved, task=None, limit=100
    )
    assert outcome == (FireOutcome.MISSED, None)
    (after,) = await store.list_schedules(owner, limit=10, offset=0)
    assert (after.next_run_at, after.last_run_at, after.last_queue_id) == (moved, 0, None)
    assert await store.count_by_state() == {}


async def test_overlap_off_skips_while_the_last_fired_task_is_unfinished(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner)

    async def fire_next(at: int) -> FireOutcome:
        (current,) = await store.list_schedules(owner, limit=10, offset=0)
        outcome, _ = await store.fire(
            current,
            fire_at=current.next_run_at,
            next_run_at=current.next_run_at + MINUTE_MS,
            task=task(at),
            limit=100,
            overlap=False,
        )
        return outcome

    assert await fire_next(row.next_run_at) is FireOutcome.FIRED  # no last task yet
    assert await fire_next(row.next_run_at + MINUTE_MS) is FireOutcome.OVERLAP
    (current,) = await store.list_schedules(owner, limit=10, offset=0)
    assert current.next_run_at == row.next_run_at + 2 * MINUTE_MS  # the skipped time is gone
    assert current.last_queue_id is not None
    ended = await store.change(owner, current.last_queue_id, lambda _: Change(state="SUCCESS"))
    assert ended is not None
    assert await fire_next(row.next_run_at + 2 * MINUTE_MS) is FireOutcome.FIRED
    assert await store.count_by_state() == {"SUCCESS": 1, "RUNNING": 1}


async def test_two_fires_of_one_time_at_once_with_overlap_off_register_one_task(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner)
    fires = [
        store.fire(
            row,
            fire_at=row.next_run_at,
            next_run_at=row.next_run_at + MINUTE_MS,
            task=task(row.next_run_at),
            limit=100,
            overlap=False,
        )
        for _ in range(2)
    ]
    outcomes = sorted(outcome.name for outcome, _ in await asyncio.gather(*fires))
    assert outcomes == ["FIRED", "STALE"]
    assert await store.count_by_state() == {"RUNNING": 1}
