"""Recurring schedules: their rows, the due ones, and fires (exactly one task per fire time)."""

from __future__ import annotations

import asyncio

from ulid import ULID

from tasks_server.schedule_lifecycle import ScheduleChange
from tasks_server.store.base import (
    FireOutcome,
    Flow,
    ListFilters,
    NewTask,
    QueueRow,
    Rejected,
    ScheduleRow,
    TaskStore,
)
from tests.store.conftest import FUTURE, add, make_owner

MINUTE_MS = 60_000


async def schedule(
    store: TaskStore,
    owner_id: str,
    *,
    next_run_at: int = MINUTE_MS,
    created_at: int = 1,
    limit: int = 100,
) -> ScheduleRow:
    row = await store.create_schedule(
        schedule_id=str(ULID()),
        owner_id=owner_id,
        cron="* * * * *",
        timezone="Europe/Paris",
        created_at=created_at,
        next_run_at=next_run_at,
        request=b"sealed-schedule",
        metadata=b"sealed-meta",
        limit=limit,
    )
    assert row is not None
    return row


def task(due: int, *, flow: Flow | None = None) -> NewTask:
    return NewTask(str(ULID()), 5, due, 2, b"sealed-task", b"sealed-task-meta", flow)


async def fire(
    store: TaskStore, row: ScheduleRow, new: NewTask, *, limit: int = 100
) -> tuple[FireOutcome, QueueRow | None]:
    return await store.fire(
        row, fire_at=row.next_run_at, next_run_at=row.next_run_at + MINUTE_MS, task=new, limit=limit
    )


async def test_a_schedule_is_created_active_and_read_by_its_owner(
    store: TaskStore, owner: str
) -> None:
    other = await make_owner(store, "owner-two")
    row = await schedule(store, owner, next_run_at=7_000, created_at=3)
    assert row == ScheduleRow(
        *(row.id, owner, "ACTIVE", "* * * * *", "Europe/Paris", 3, 7_000, 0, None, 0),
        *(b"sealed-schedule", b"sealed-meta"),
    )
    assert await store.get_schedule(owner, row.id) == row
    assert await store.get_schedule(other, row.id) is None
    assert await store.get_schedule(owner, str(ULID())) is None


async def test_an_owner_has_at_most_limit_schedules(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    first = await schedule(store, owner, limit=2)
    paused = await store.change_schedule(owner, first.id, lambda _r: ScheduleChange(state="PAUSED"))
    assert isinstance(paused, ScheduleRow)  # paused, it still counts
    await schedule(store, owner, limit=2)
    made = await store.create_schedule(
        schedule_id=str(ULID()),
        owner_id=owner,
        cron="* * * * *",
        timezone="UTC",
        created_at=1,
        next_run_at=1,
        request=b"r",
        metadata=None,
        limit=2,
    )
    assert made is None
    await schedule(store, other, limit=2)


async def test_an_unknown_owner_creates_no_schedule(store: TaskStore, owner: str) -> None:
    made = await store.create_schedule(
        schedule_id=str(ULID()),
        owner_id=str(ULID()),
        cron="* * * * *",
        timezone="UTC",
        created_at=1,
        next_run_at=1,
        request=b"r",
        metadata=None,
        limit=10,
    )
    assert made is None
    assert await store.count_schedules() == 0


async def test_schedules_are_listed_in_creation_order_by_page(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    await schedule(store, other)
    rows = [await schedule(store, owner, created_at=created) for created in (30, 10, 10, 20)]
    ordered = sorted(rows, key=lambda row: (row.created_at, row.id))
    assert await store.list_schedules(owner, limit=10, offset=0) == ordered
    assert await store.list_schedules(owner, limit=2, offset=1) == ordered[1:3]
    assert await store.list_schedules(owner, limit=10, offset=4) == []


async def test_a_schedule_change_applies_decide_and_bumps_the_version(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner)
    seen: list[ScheduleRow] = []

    def decide(current: ScheduleRow) -> ScheduleChange:
        seen.append(current)
        return ScheduleChange(cron="0 * * * *", timezone="UTC", next_run_at=3_600_000)

    changed = await store.change_schedule(owner, row.id, decide)
    assert seen == [row]
    assert changed == ScheduleRow(
        *(row.id, owner, "ACTIVE", "0 * * * *", "UTC", 1, 3_600_000, 0, None, 1),
        *(row.request, row.metadata),
    )
    assert await store.get_schedule(owner, row.id) == changed


async def test_a_refused_or_foreign_schedule_change_changes_nothing(
    store: TaskStore, owner: str
) -> None:
    other = await make_owner(store, "owner-two")
    row = await schedule(store, owner)
    refusal = Rejected("no")
    assert await store.change_schedule(owner, row.id, lambda _r: refusal) == refusal
    assert (
        await store.change_schedule(other, row.id, lambda _r: ScheduleChange(state="PAUSED"))
        is None
    )
    assert (
        await store.change_schedule(owner, str(ULID()), lambda _r: ScheduleChange(state="PAUSED"))
        is None
    )
    assert await store.get_schedule(owner, row.id) == row


async def test_a_schedule_is_deleted_once_its_tasks_stay(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    row = await schedule(store, owner)
    outcome, fired = await fire(store, row, task(row.next_run_at))
    assert outcome is FireOutcome.FIRED and fired is not None
    assert not await store.delete_schedule(other, row.id)
    assert await store.delete_schedule(owner, row.id)
    assert not await store.delete_schedule(owner, row.id)
    assert await store.get_schedule(owner, row.id) is None
    assert await store.get(owner, fired.id) == fired


async def test_due_schedules_are_the_active_ones_due_by_then_earliest_first(
    store: TaskStore, owner: str
) -> None:
    other = await make_owner(store, "owner-two")
    later = await schedule(store, owner, next_run_at=3_000)
    earlier = await schedule(store, other, next_run_at=1_000)
    paused = await schedule(store, owner, next_run_at=500)
    assert isinstance(
        await store.change_schedule(owner, paused.id, lambda _r: ScheduleChange(state="PAUSED")),
        ScheduleRow,
    )
    await schedule(store, owner, next_run_at=3_001)
    assert await store.due_schedules(before=3_000, limit=10) == [earlier, later]
    assert await store.due_schedules(before=3_000, limit=1) == [earlier]
    assert await store.due_schedules(before=999, limit=10) == []
    assert await store.count_schedules() == 3


# --- fires ----------------------------------------------------------------------------------


async def test_a_fire_registers_its_task_and_moves_the_schedule_on(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner, next_run_at=MINUTE_MS)
    new = task(MINUTE_MS)
    outcome, fired = await fire(store, row, new)
    assert (outcome, fired) == (
        FireOutcome.FIRED,
        QueueRow(
            *(new.queue_id, owner, "RUNNING", 5, 0, MINUTE_MS, 0, None, 0, 2, 0),
            *(b"sealed-task", b"sealed-task-meta", None, 0, row.id, False),
        ),
    )
    moved = await store.get_schedule(owner, row.id)
    assert moved is not None
    assert (moved.next_run_at, moved.last_run_at, moved.last_queue_id, moved.version) == (
        2 * MINUTE_MS,
        MINUTE_MS,
        new.queue_id,
        0,
    )
    listed = await store.list_tasks(
        owner,
        filters=ListFilters(schedule_id=row.id),
        order="createdAt",
        descending=False,
        limit=10,
        offset=0,
    )
    assert [summary.id for summary in listed] == [new.queue_id]
    assert await store.active_counts() == {owner: (1, 1)}


async def test_a_fire_of_a_schedule_changed_since_it_was_read_is_stale(
    store: TaskStore, owner: str
) -> None:
    row = await schedule(store, owner)
    assert (await fire(store, row, task(row.next_run_at)))[0] is FireOutcome.FIRED
    assert await fire(store, row, task(row.next_run_at)) == (FireOutcome.STALE, None)
    moved = await store.get_schedule(owner, row.id)
    assert moved is not None
    edited = await store.change_schedule(owner, row.id, lambda _r: ScheduleChange(metadata=None))
    assert await fire(store, moved, task(moved.next_run_at)) == (FireOutcome.STALE, None)
    assert isinstance(edited, ScheduleRow)
    paused = await store.change_schedule(owner, row.id, lambda _r: ScheduleChange(state="PAUSED"))
    assert isinstance(paused, ScheduleRow)
    assert await fire(store, paused, task(paused.next_run_at)) == (FireOutcome.STALE, None)
    assert await store.count_by_state() == {"RUNNING": 1}


async def test_a_fire_time_registers_one_task_however_often_it_is_fired(
    store: TaskStore, owner: str
) -> None:
    """An edit that sets the same fire time again (a re-read row, current) still cannot
    register that time a second time: the schedule moves on, nothing is registered."""
    row = await schedule(store, owner)
    assert (await fire(store, row, task(row.next_run_at)))[0] is FireOutcome.FIRED
    again = await store.change_schedule(
        owner, row.id, lambda _r: ScheduleChange(next_run_at=row.next_run_at)
    )
    assert isinstance(again, ScheduleRow)
    assert await fire(store, again, task(again.next_run_at)) == (FireOutcome.DUPLICATE, None)
    moved = await store.get_schedule(owner, row.id)
    assert moved is not None and moved.next_run_at == row.next_run_at + MINUTE_MS
    assert await store.count_by_state() == {"RUNNING": 1}


async def test_fires_of_one_time_at_once_register_one_task(store: TaskStore, owner: str) -> None:
    row = await schedule(store, owner)
    fires = await asyncio.gather(*(fire(store, row, task(row.next_run_at)) for _ in range(6)))
    assert sorted(outcome.name for outcome, _ in fires) == ["FIRED"] + ["STALE"] * 5
    assert await store.count_by_state() == {"RUNNING": 1}
    assert await store.delete_schedule(owner, row.id)
    assert await fire(store, row, task(row.next_run_at)) == (FireOutcome.STALE, None)


async def test_a_fire_for_a_full_owner_is_skipped_and_the_schedule_moves_on(
    store: TaskStore, owner: str
) -> None:
    await add(store, owner, due=FUTURE)
    row = await schedule(store, owner)
    assert await fire(store, row, task(row.next_run_at), limit=1) == (
        FireOutcome.LIMIT_REACHED,
        None,
    )
    moved = await store.get_schedule(owner, row.id)
    assert moved is not None
    assert (moved.next_run_at, moved.last_run_at, moved.last_queue_id) == (2 * MINUTE_MS, 0, None)
    assert (await fire(store, moved, task(moved.next_run_at), limit=2))[0] is FireOutcome.FIRED


async def test_a_fired_task_keeps_its_flow_key(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await schedule(store, owner, next_run_at=now - 1)
    outcome, fired = await fire(store, row, task(now - 1, flow=Flow("fired-key", 1, None)))
    assert outcome is FireOutcome.FIRED and fired is not None
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert (due.id, due.flow_key) == (fired.id, "fired-key")
