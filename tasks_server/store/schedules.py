"""Schedule rows: CRUD, the due ones, and a fire written in one transaction."""

from __future__ import annotations

from tasks_server.store import queries
from tasks_server.store.base import (
    FireOutcome,
    NewTask,
    QueueRow,
    Rejected,
    ScheduleDecide,
    ScheduleRow,
    flow_columns,
    listing_columns,
)
from tasks_server.store.driver import Driver, Tx


async def create(
    d: Driver,
    *,
    schedule_id: str,
    owner_id: str,
    cron: str,
    timezone: str,
    created_at: int,
    next_run_at: int,
    request: bytes,
    metadata: bytes | None,
    limit: int,
    labels: str | None = None,
) -> ScheduleRow | None:
    """Insert an ACTIVE schedule unless the owner has `limit` already or is unknown (None
    then). The owner's row is locked first, so concurrent creations count exactly."""
    values = (
        *(schedule_id, owner_id, cron, timezone, created_at, next_run_at, request, metadata),
        labels,
    )

    async def unit(tx: Tx) -> ScheduleRow | None:
        if await tx.fetchrow("lock_owner", owner_id) is None:
            return None
        if await tx.fetchval("count_owner_schedules", owner_id) >= limit:
            return None
        row = await tx.fetchrow("insert_schedule", *values)
        return None if row is None else ScheduleRow(*row)

    return await d.write(unit)


async def get(d: Driver, owner_id: str, schedule_id: str) -> ScheduleRow | None:
    row = await d.read(lambda tx: tx.fetchrow("select_schedule", schedule_id, owner_id))
    return None if row is None else ScheduleRow(*row)


async def list_for_owner(d: Driver, owner_id: str, *, limit: int, offset: int) -> list[ScheduleRow]:
    rows = await d.read(lambda tx: tx.fetch("list_schedules", owner_id, limit, offset))
    return [ScheduleRow(*row) for row in rows]


async def change(
    d: Driver, owner_id: str, schedule_id: str, decide: ScheduleDecide
) -> ScheduleRow | Rejected | None:
    """Apply `decide(row)`'s changes in one transaction, bumping the version."""

    async def unit(tx: Tx) -> ScheduleRow | Rejected | None:
        found = await tx.fetchrow("lock_schedule", schedule_id, owner_id)
        if found is None:
            return None
        decided = decide(ScheduleRow(*found))
        if isinstance(decided, Rejected):
            return decided
        changes = decided.assigned()
        fill = queries.assignments(tuple(changes), queries.SCHEDULE_CHANGEABLE)
        updated = await tx.fetchrow("update_schedule", *changes.values(), schedule_id, fill=fill)
        assert updated is not None
        return ScheduleRow(*updated)

    return await d.write(unit)


async def delete(d: Driver, owner_id: str, schedule_id: str) -> bool:
    found = await d.statement(lambda tx: tx.fetchrow("delete_schedule", schedule_id, owner_id))
    return found is not None


async def due(d: Driver, *, before: int, limit: int) -> list[ScheduleRow]:
    rows = await d.read(lambda tx: tx.fetch("due_schedules", before, limit))
    return [ScheduleRow(*row) for row in rows]


async def fire(
    d: Driver,
    schedule: ScheduleRow,
    *,
    fire_at: int,
    next_run_at: int,
    task: NewTask | None,
    limit: int,
    overlap: bool = True,
) -> tuple[FireOutcome, QueueRow | None]:
    """Register the task of one fire time and move the schedule on, in one transaction.

    A fire applies only to the schedule as it was read: a change or another fire meanwhile
    wins. At most one task per (schedule, fire time): a second fire of the same time finds
    the unique index and registers nothing. A full owner skips the fire.
    """

    async def unit(tx: Tx) -> tuple[FireOutcome, QueueRow | None]:
        current = (schedule.id, schedule.version, schedule.next_run_at)
        if await tx.fetchrow("lock_current_schedule", *current) is None:
            return FireOutcome.STALE, None
        if task is None:
            await tx.execute("advance_schedule", next_run_at, schedule.id)
            return FireOutcome.MISSED, None
        if not overlap and await tx.fetchrow("last_fire_unfinished", schedule.id) is not None:
            await tx.execute("advance_schedule", next_run_at, schedule.id)
            return FireOutcome.OVERLAP, None
        values = (
            *(task.queue_id, schedule.owner_id, task.created_at, task.due, task.retry_limit),
            *(task.request, task.metadata, schedule.id, fire_at),
            *flow_columns(task.flow).values(),
            *listing_columns(task.listing).values(),
        )
        room = await tx.fetchrow("owner_has_room", schedule.owner_id, limit)
        if room is None or not room[0]:
            await tx.execute("advance_schedule", next_run_at, schedule.id)
            return FireOutcome.LIMIT_REACHED, None
        row = await tx.fetchrow("insert_fired", *values)
        if row is None:
            await tx.execute("advance_schedule", next_run_at, schedule.id)
            return FireOutcome.DUPLICATE, None
        await tx.execute("fired", next_run_at, fire_at, task.queue_id, schedule.id)
        return FireOutcome.FIRED, QueueRow.from_row(row)

    return await d.write(unit)


async def count_active(d: Driver) -> int:
    return int(await d.read(lambda tx: tx.fetchval("count_active_schedules")))
