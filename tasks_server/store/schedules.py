"""Schedule rows (SQLite): CRUD, the due ones, and a fire written in one transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

from tasks_server.store.base import (
    FireOutcome,
    NewTask,
    QueueRow,
    Rejected,
    ScheduleDecide,
    ScheduleRow,
    flow_columns,
)
from tasks_server.store.db import Database
from tasks_server.store.queues import COLUMNS

SCHEDULE_COLUMNS = (
    "id, owner_id, state, cron, timezone, created_at, next_run_at, last_run_at, last_queue_id, "
    "version, request, metadata"
)
# Selected from the owner's row: an unknown owner inserts nothing, as a full one.
INSERT_SCHEDULE = f"""
INSERT INTO schedules (id, owner_id, state, cron, timezone, created_at, next_run_at, request,
                       metadata)
SELECT ?, id, 'ACTIVE', ?, ?, ?, ?, ?, ?
  FROM owners
 WHERE id = ? AND (SELECT count(*) FROM schedules WHERE owner_id = owners.id) < ?
RETURNING {SCHEDULE_COLUMNS}
"""
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ? AND owner_id = ?"
LIST_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE owner_id = ? ORDER BY created_at, id
 LIMIT ? OFFSET ?
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE id = ? AND owner_id = ? RETURNING id"
DUE_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
 WHERE state = 'ACTIVE' AND next_run_at <= ? ORDER BY next_run_at LIMIT ?
"""
# A fire applies only to the schedule as it was read: a change or another fire meanwhile wins.
CURRENT = """
SELECT 1 FROM schedules WHERE id = ? AND state = 'ACTIVE' AND version = ? AND next_run_at = ?
"""
OWNER_HAS_ROOM = "SELECT active_tasks < ? FROM owners WHERE id = ?"
INSERT_FIRED = f"""
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, schedule_id, scheduled_for, flow_key,
                    flow_parallelism, flow_rate)
VALUES (?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
RETURNING {COLUMNS}
"""
ADVANCE = "UPDATE schedules SET next_run_at = ? WHERE id = ?"
FIRED = "UPDATE schedules SET next_run_at = ?, last_run_at = ?, last_queue_id = ? WHERE id = ?"
COUNT_ACTIVE = "SELECT count(*) FROM schedules WHERE state = 'ACTIVE'"

_CHANGEABLE = frozenset({"state", "cron", "timezone", "next_run_at", "request", "metadata"})


async def create(
    db: Database,
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
) -> ScheduleRow | None:
    """Insert an ACTIVE schedule unless the owner has `limit` already or is unknown (None
    then)."""
    params = (schedule_id, cron, timezone, created_at, next_run_at, request, metadata)

    def unit(conn: sqlite3.Connection) -> ScheduleRow | None:
        rows = conn.execute(INSERT_SCHEDULE, (*params, owner_id, limit)).fetchall()
        return ScheduleRow(*rows[0]) if rows else None

    return await db.write(unit)


async def get(db: Database, owner_id: str, schedule_id: str) -> ScheduleRow | None:
    row = await db.fetchone(SELECT_SCHEDULE, (schedule_id, owner_id))
    return None if row is None else ScheduleRow(*row)


async def list_for_owner(
    db: Database, owner_id: str, *, limit: int, offset: int
) -> list[ScheduleRow]:
    return [
        ScheduleRow(*row) for row in await db.fetchall(LIST_SCHEDULES, (owner_id, limit, offset))
    ]


async def change(
    db: Database, owner_id: str, schedule_id: str, decide: ScheduleDecide
) -> ScheduleRow | Rejected | None:
    """Apply `decide(row)`'s changes in one transaction, bumping the version."""

    def unit(conn: sqlite3.Connection) -> ScheduleRow | Rejected | None:
        rows = conn.execute(SELECT_SCHEDULE, (schedule_id, owner_id)).fetchall()
        if not rows:
            return None
        changes = decide(ScheduleRow(*rows[0]))
        if isinstance(changes, Rejected):
            return changes
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise ValueError(f"not changeable: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in changes)
        updated = conn.execute(
            f"UPDATE schedules SET {assignments}, version = version + 1 "
            f"WHERE id = ? RETURNING {SCHEDULE_COLUMNS}",
            (*changes.values(), schedule_id),
        ).fetchall()
        return ScheduleRow(*updated[0])

    return await db.write(unit)


async def delete(db: Database, owner_id: str, schedule_id: str) -> bool:
    def unit(conn: sqlite3.Connection) -> bool:
        return bool(conn.execute(DELETE_SCHEDULE, (schedule_id, owner_id)).fetchall())

    return await db.write(unit)


async def due(db: Database, *, before: int, limit: int) -> list[ScheduleRow]:
    return [ScheduleRow(*row) for row in await db.fetchall(DUE_SCHEDULES, (before, limit))]


async def fire(
    db: Database,
    schedule: ScheduleRow,
    *,
    fire_at: int,
    next_run_at: int,
    task: NewTask,
    limit: int,
) -> tuple[FireOutcome, QueueRow | None]:
    """Register the task of one fire time and move the schedule on, in one transaction.

    At most one task per (schedule, fire time): a second fire of the same time finds the
    unique index and registers nothing. A full owner skips the fire.
    """

    def unit(conn: sqlite3.Connection) -> tuple[FireOutcome, QueueRow | None]:
        current = (schedule.id, schedule.version, schedule.next_run_at)
        if not conn.execute(CURRENT, current).fetchall():
            return FireOutcome.STALE, None
        (room,) = conn.execute(OWNER_HAS_ROOM, (limit, schedule.owner_id)).fetchone()
        if not room:
            conn.execute(ADVANCE, (next_run_at, schedule.id))
            return FireOutcome.LIMIT_REACHED, None
        params: tuple[Any, ...] = (task.queue_id, schedule.owner_id, task.created_at, task.due)
        params += (task.retry_limit, task.request, task.metadata, schedule.id, fire_at)
        params += tuple(flow_columns(task.flow).values())
        rows = conn.execute(INSERT_FIRED, params).fetchall()
        if not rows:
            conn.execute(ADVANCE, (next_run_at, schedule.id))
            return FireOutcome.DUPLICATE, None
        conn.execute(FIRED, (next_run_at, fire_at, task.queue_id, schedule.id))
        return FireOutcome.FIRED, QueueRow.from_row(rows[0])

    return await db.write(unit)


async def count_active(db: Database) -> int:
    row = await db.fetchone(COUNT_ACTIVE)
    return int(row[0]) if row else 0
