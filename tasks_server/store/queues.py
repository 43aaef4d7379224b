"""Queue (task) rows: registration, reads, client changes, and the scheduler's leases.

A lease (`lease_owner`, `lease_until`) says which process may execute a task. It passes to
another process only once expired; its holder releases it. Client changes never touch the
lease, they bump `version`, and an outcome is recorded only for the version it was run with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from tasks_server.store.db import Database, WriteUnit

COLUMNS = (
    "id, owner_id, state, created_at, status_code, estimate_execution_at, estimate_end_at, "
    "paused_at, retry_count, retry_limit, version, request, metadata, response"
)
SUMMARY_COLUMNS = "id, state, created_at, status_code, estimate_execution_at, estimate_end_at"

INSERT_QUEUE = f"""
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until)
SELECT ?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?
 WHERE (SELECT active_tasks FROM owners WHERE id = ?) < ?
RETURNING {COLUMNS}
"""
OWNER_EXISTS = "SELECT 1 FROM owners WHERE id = ?"
SELECT_QUEUE = f"SELECT {COLUMNS} FROM queues WHERE id = ? AND owner_id = ?"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM queues WHERE id = ?"
DELETE_QUEUE = "DELETE FROM queues WHERE id = ? AND owner_id = ? RETURNING id"

ORDER_COLUMNS = {
    "createdAt": "created_at",
    "estimateEndAt": "estimate_end_at",
    "estimateExecutionAt": "estimate_execution_at",
}

CLAIM = f"""
UPDATE queues SET lease_owner = ?, lease_until = ?
 WHERE id IN (SELECT id FROM queues
               WHERE state = 'RUNNING' AND estimate_execution_at <= ?
                 AND (lease_owner IS NULL OR lease_until < ?)
               ORDER BY estimate_execution_at LIMIT ?)
RETURNING {COLUMNS}
"""
RENEW_LEASES = "UPDATE queues SET lease_until = ? WHERE lease_owner = ?"
RELEASE_LEASE = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?"
)
RELEASE_LEASES_OF = "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"
RELEASE_ALL_LEASES = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL"
)
LEASED_VERSIONS = "SELECT id, state, version FROM queues WHERE lease_owner = ?"
FINISH = """
UPDATE queues SET state = ?, status_code = ?, response = ?, estimate_end_at = ?,
                  lease_owner = NULL, lease_until = NULL, version = version + 1
 WHERE id = ? AND lease_owner = ? AND version = ?
"""
RETRY_LATER = """
UPDATE queues SET status_code = ?, response = ?, retry_count = retry_count + 1,
                  estimate_execution_at = ?, lease_owner = NULL, lease_until = NULL,
                  version = version + 1
 WHERE id = ? AND lease_owner = ? AND version = ?
"""
COUNT_BY_STATE = "SELECT state, count(*) FROM queues GROUP BY state"
COUNT_OVERDUE = "SELECT count(*) FROM queues WHERE state = 'RUNNING' AND estimate_execution_at < ?"

_CHANGEABLE = frozenset(
    {
        "state",
        "estimate_execution_at",
        "estimate_end_at",
        "paused_at",
        "retry_count",
        "retry_limit",
        "request",
        "metadata",
    }
)


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: str
    owner_id: str
    state: str
    created_at: int
    status_code: int
    estimate_execution_at: int
    estimate_end_at: int
    paused_at: int | None
    retry_count: int
    retry_limit: int
    version: int
    request: bytes
    metadata: bytes | None
    response: bytes | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> QueueRow:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class QueueSummaryRow:
    id: str
    state: str
    created_at: int
    status_code: int
    estimate_execution_at: int
    estimate_end_at: int


class InsertOutcome(Enum):
    INSERTED = auto()
    LIMIT_REACHED = auto()
    NO_OWNER = auto()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change refused because of the task's state (the API answers 422)."""

    message: str


# Runs on the database writer thread inside the transaction: decide only, change nothing else.
Decide = Callable[[QueueRow], "dict[str, Any] | Rejected"]


def insert_unit(
    *,
    queue_id: str,
    owner_id: str,
    created_at: int,
    due: int,
    retry_limit: int,
    request: bytes,
    metadata: bytes | None,
    limit: int,
    lease: tuple[str, int] | None,
) -> WriteUnit[tuple[InsertOutcome, QueueRow | None]]:
    """The write unit inserting a RUNNING task unless the owner is at its limit.

    `lease` pre-claims it. Run it with `Database.write`, or inside a larger unit.
    """
    lease_owner, lease_until = lease or (None, None)

    def unit(conn: sqlite3.Connection) -> tuple[InsertOutcome, QueueRow | None]:
        rows = conn.execute(
            INSERT_QUEUE,
            (
                *(queue_id, owner_id, created_at, due, retry_limit, request, metadata),
                *(lease_owner, lease_until, owner_id, limit),
            ),
        ).fetchall()
        if rows:
            return InsertOutcome.INSERTED, QueueRow.from_row(rows[0])
        if conn.execute(OWNER_EXISTS, (owner_id,)).fetchall():
            return InsertOutcome.LIMIT_REACHED, None
        return InsertOutcome.NO_OWNER, None

    return unit


async def get(db: Database, owner_id: str, queue_id: str) -> QueueRow | None:
    row = await db.fetchone(SELECT_QUEUE, (queue_id, owner_id))
    return None if row is None else QueueRow.from_row(row)


async def list_for_owner(
    db: Database,
    owner_id: str,
    *,
    state: str | None,
    order: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[QueueSummaryRow]:
    column = ORDER_COLUMNS[order]
    direction = "DESC" if descending else "ASC"
    where = "owner_id = ?" + (" AND state = ?" if state else "")
    params: tuple[Any, ...] = (owner_id, state) if state else (owner_id,)
    sql = (
        f"SELECT {SUMMARY_COLUMNS} FROM queues WHERE {where} "
        f"ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?"
    )
    rows = await db.fetchall(sql, (*params, limit, offset))
    return [QueueSummaryRow(*row) for row in rows]


async def change(
    db: Database, owner_id: str, queue_id: str, decide: Decide
) -> QueueRow | Rejected | None:
    """Apply `decide(row)`'s column changes in one transaction, bumping the version.

    None when the task does not exist for this owner.
    """

    def unit(conn: sqlite3.Connection) -> QueueRow | Rejected | None:
        rows = conn.execute(SELECT_QUEUE, (queue_id, owner_id)).fetchall()
        if not rows:
            return None
        changes = decide(QueueRow.from_row(rows[0]))
        if isinstance(changes, Rejected):
            return changes
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise ValueError(f"not changeable: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in changes)
        updated = conn.execute(
            f"UPDATE queues SET {assignments}, version = version + 1 "
            f"WHERE id = ? RETURNING {COLUMNS}",
            (*changes.values(), queue_id),
        ).fetchall()
        return QueueRow.from_row(updated[0])

    return await db.write(unit)


async def delete(db: Database, owner_id: str, queue_id: str) -> bool:
    def unit(conn: sqlite3.Connection) -> bool:
        return bool(conn.execute(DELETE_QUEUE, (queue_id, owner_id)).fetchall())

    return await db.write(unit)


async def claim(
    db: Database, *, lease_owner: str, now: int, horizon: int, lease_ms: int, limit: int
) -> list[QueueRow]:
    """Lease up to `limit` RUNNING tasks due by `horizon` that nobody holds."""

    def unit(conn: sqlite3.Connection) -> list[QueueRow]:
        rows = conn.execute(CLAIM, (lease_owner, now + lease_ms, horizon, now, limit)).fetchall()
        return [QueueRow.from_row(row) for row in rows]

    return await db.write(unit)


async def reload(db: Database, queue_id: str) -> QueueRow | None:
    row = await db.fetchone(SELECT_BY_ID, (queue_id,))
    return None if row is None else QueueRow.from_row(row)


async def leased_versions(db: Database, lease_owner: str) -> dict[str, tuple[str, int]]:
    rows = await db.fetchall(LEASED_VERSIONS, (lease_owner,))
    return {row[0]: (row[1], row[2]) for row in rows}


async def renew_leases(db: Database, lease_owner: str, until: int) -> None:
    await _execute(db, RENEW_LEASES, (until, lease_owner))


async def release_lease(db: Database, queue_id: str, lease_owner: str) -> None:
    await _execute(db, RELEASE_LEASE, (queue_id, lease_owner))


async def release_leases_of(db: Database, lease_owner: str) -> None:
    await _execute(db, RELEASE_LEASES_OF, (lease_owner,))


async def release_all_leases(db: Database) -> None:
    """At start-up of a server that is alone on its database: every lease is stale."""
    await _execute(db, RELEASE_ALL_LEASES, ())


async def finish(
    db: Database,
    *,
    queue_id: str,
    lease_owner: str,
    version: int,
    state: str,
    status_code: int,
    response: bytes | None,
    ended_at: int,
) -> bool:
    """Record a final outcome (SUCCESS or ERROR); False when the task changed meanwhile."""
    params = (state, status_code, response, ended_at, queue_id, lease_owner, version)
    return await _execute(db, FINISH, params) > 0


async def retry_later(
    db: Database,
    *,
    queue_id: str,
    lease_owner: str,
    version: int,
    status_code: int,
    response: bytes | None,
    due: int,
) -> bool:
    """Record a failed attempt and schedule the next; False when the task changed meanwhile."""
    params = (status_code, response, due, queue_id, lease_owner, version)
    return await _execute(db, RETRY_LATER, params) > 0


async def count_by_state(db: Database) -> dict[str, int]:
    return {row[0]: row[1] for row in await db.fetchall(COUNT_BY_STATE)}


async def count_overdue(db: Database, *, now: int, late_by: int) -> int:
    """RUNNING tasks due more than `late_by` ms ago: not started, or still in flight."""
    row = await db.fetchone(COUNT_OVERDUE, (now - late_by,))
    return int(row[0]) if row else 0


async def _execute(db: Database, sql: str, params: tuple[Any, ...]) -> int:
    def unit(conn: sqlite3.Connection) -> int:
        return conn.execute(sql, params).rowcount

    return await db.write(unit)
