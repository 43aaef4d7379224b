"""Queue (task) rows: registration, reads, client changes, and the scheduler's leases.

A lease (`lease_owner`, `lease_until`) says which process may execute a task. It passes to
another process only once expired; its holder releases it. Client changes never touch the
lease, they bump `version`, and an outcome is recorded only for the version it was run with.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tasks_server.store import flow
from tasks_server.store.base import (
    AttemptRow,
    Decide,
    Due,
    Flow,
    InsertOutcome,
    NewTask,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    Result,
    change_columns,
    flow_columns,
    limit_message,
    task_values,
)
from tasks_server.store.db import Database

# A task is in flight exactly when it has an open attempt row (SPEC §9.1).
IN_FLIGHT = "EXISTS (SELECT 1 FROM attempts a WHERE a.queue_id = queues.id AND a.finished_at = 0)"
COLUMNS = (
    "id, owner_id, state, created_at, status_code, estimate_execution_at, estimate_end_at, "
    "paused_at, retry_count, retry_limit, version, request, metadata, response, attempts, "
    f"schedule_id, {IN_FLIGHT}, callback_of, callback_id"
)
# What the scheduler needs of a due task: never the response blob.
DUE_COLUMNS = (
    "id, owner_id, estimate_execution_at, retry_count, retry_limit, version, attempts, request"
)
SUMMARY_COLUMNS = (
    "id, state, created_at, status_code, estimate_execution_at, estimate_end_at, schedule_id"
)

INSERT_QUEUE = f"""
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate)
SELECT ?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
 WHERE (SELECT active_tasks FROM owners WHERE id = ?) < ?
RETURNING {COLUMNS}
"""
PING = "SELECT 1"
OWNER_EXISTS = "SELECT 1 FROM owners WHERE id = ?"
OWNER_HAS_ROOM = "SELECT active_tasks < ? FROM owners WHERE id = ?"
SELECT_QUEUE = f"SELECT {COLUMNS} FROM queues WHERE id = ? AND owner_id = ?"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM queues WHERE id = ?"
DELETE_QUEUE = "DELETE FROM queues WHERE id = ? AND owner_id = ? RETURNING id"
SELECT_IDS_IN_STATE = (
    "SELECT id FROM queues WHERE owner_id = ? AND state = ? ORDER BY created_at, id LIMIT ?"
)
COUNT_IN_STATE = "SELECT count(*) FROM queues WHERE owner_id = ? AND state = ?"

ORDER_COLUMNS = {
    "createdAt": "created_at",
    "estimateEndAt": "estimate_end_at",
    "estimateExecutionAt": "estimate_execution_at",
}

CLAIMABLE = """(lease_owner IS NULL OR lease_until < :now)
   AND NOT EXISTS (SELECT 1 FROM attempts a
                    WHERE a.queue_id = queues.id AND a.finished_at = 0 AND a.holder = :holder)"""
# A lease passes on only once expired, and never to a task whose attempt this holder still
# runs: after a forward clock step its own leases look expired (SPEC §3.5).
CLAIM = f"""
UPDATE queues SET lease_owner = :holder, lease_until = :now + :lease
 WHERE id IN (SELECT id FROM queues
               WHERE state = 'RUNNING' AND estimate_execution_at <= :horizon
                 AND flow_key IS NULL AND {CLAIMABLE}
               ORDER BY estimate_execution_at LIMIT :limit)
RETURNING {DUE_COLUMNS}
"""
# Flow keys (owner, key) with a waiting task their limits could lease now, earliest first.
FLOW_KEYS_READY = """
SELECT q.owner_id, q.flow_key FROM queues q
  LEFT JOIN flows f ON f.owner_id = q.owner_id AND f.key = q.flow_key
 WHERE q.state = 'RUNNING' AND q.flow_key IS NOT NULL AND q.estimate_execution_at <= :horizon
   AND (q.lease_owner IS NULL OR q.lease_until < :now)
 GROUP BY q.owner_id, q.flow_key
HAVING coalesce(max(f.next_start_at), 0) <= :horizon
   AND (max(q.flow_parallelism) IS NULL OR max(q.flow_parallelism) > (
        SELECT count(*) FROM queues b
         WHERE b.owner_id = q.owner_id AND b.flow_key = q.flow_key AND b.state = 'RUNNING'
           AND b.lease_until >= :now))
 ORDER BY min(q.estimate_execution_at) LIMIT :limit
"""
# The key's row is its lock (SQLite has one writer: the row only has to exist).
FLOW_ROW = "INSERT INTO flows (owner_id, key) VALUES (?, ?) ON CONFLICT DO NOTHING"
FLOW_NEXT_START = "SELECT next_start_at FROM flows WHERE owner_id = ? AND key = ?"
FLOW_BUSY = """
SELECT count(*) FROM queues
 WHERE owner_id = ? AND flow_key = ? AND state = 'RUNNING' AND lease_until >= ?
"""
FLOW_CANDIDATES = f"""
SELECT {DUE_COLUMNS}, flow_key, flow_parallelism, flow_rate FROM queues
 WHERE owner_id = :owner AND flow_key = :key AND state = 'RUNNING'
   AND estimate_execution_at <= :horizon AND {CLAIMABLE}
 ORDER BY estimate_execution_at, id LIMIT :limit
"""
LEASE = "UPDATE queues SET lease_owner = ?, lease_until = ? WHERE id = ?"
FLOW_ADVANCE = "UPDATE flows SET next_start_at = ? WHERE owner_id = ? AND key = ?"
# Attempts left open by a holder whose lease expired (a dead process) end when claimed again.
INTERRUPT_CLAIMED = """
UPDATE attempts SET finished_at = :now, outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder != :holder
   AND queue_id IN (SELECT id FROM queues WHERE lease_owner = :holder)
"""
# The attempts' own writes (start, outcome) are shared by every attempt a batch holds
# (`Database.share`): a few statements per batch, not several per attempt. Items without blobs
# travel as one JSON array, [[id, holder, version, ...], ...]; the outcomes, which carry
# sealed blobs, as a VALUES list of bound parameters (`_values`).
STARTABLE = """
  FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS holder,
               json_extract(value, '$[2]') AS version, json_extract(value, '$[3]') AS now
          FROM json_each(?)) j
  JOIN queues q ON q.id = j.id
 WHERE q.lease_owner = j.holder AND q.version = j.version AND q.state = 'RUNNING'
"""
# {id: the number its attempt opens as}: the stored count, which a stale `Due` may lag.
STARTABLE_NUMBERS = f"SELECT json_group_object(q.id, q.attempts + 1) {STARTABLE}"
OPEN_ATTEMPTS = f"""
INSERT INTO attempts (queue_id, attempt, holder, due_at, started_at)
SELECT q.id, q.attempts + 1, j.holder, q.estimate_execution_at, j.now {STARTABLE}
"""
COUNT_ATTEMPTS = """
UPDATE queues SET attempts = attempts + 1 WHERE id IN (SELECT key FROM json_each(?))
"""
ABORT_OPEN = """
UPDATE attempts SET finished_at = ?, outcome = 'ABORTED'
 WHERE queue_id = ? AND holder = ? AND attempt = ? AND started_at = ? AND finished_at = 0
"""
CLOSE_ATTEMPTS = """
WITH v(id, attempt, now, status_code, outcome, error, response) AS (VALUES {values})
UPDATE attempts SET finished_at = v.now, status_code = v.status_code, outcome = v.outcome,
                    error = v.error, response = v.response
  FROM v WHERE attempts.queue_id = v.id AND attempts.attempt = v.attempt
               AND attempts.finished_at = 0
"""
# An outcome applies only for the version it was run with, by the lease's holder.
APPLICABLE_IDS = """
SELECT json_group_array(q.id)
  FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS holder,
               json_extract(value, '$[2]') AS version
          FROM json_each(?)) j
  JOIN queues q ON q.id = j.id
 WHERE q.lease_owner = j.holder AND q.version = j.version
"""
# An ending outcome (`state` set) finishes the task; otherwise it retries at `retry_at`.
RECORD_OUTCOMES = """
WITH v(id, holder, version, state, status_code, response, now, retry_at) AS (VALUES {values})
UPDATE queues SET state = coalesce(v.state, queues.state), status_code = v.status_code,
                  response = v.response,
                  estimate_end_at = iif(v.state IS NULL, queues.estimate_end_at, v.now),
                  estimate_execution_at = iif(v.state IS NULL, v.retry_at,
                                              queues.estimate_execution_at),
                  retry_count = queues.retry_count + (v.state IS NULL),
                  lease_owner = NULL, lease_until = NULL, version = queues.version + 1
  FROM v WHERE queues.id = v.id AND queues.lease_owner = v.holder AND queues.version = v.version
"""
PRUNE_ATTEMPTS = "DELETE FROM attempts WHERE queue_id = ? AND attempt <= ?"
SELECT_ATTEMPTS = """
SELECT attempt, due_at, started_at, finished_at, status_code, outcome, error, response
  FROM attempts WHERE queue_id = ? ORDER BY attempt LIMIT ? OFFSET ?
"""
RENEW_LEASES = """
UPDATE queues SET lease_until = ?
 WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))
"""
RELEASE_LEASE = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?"
)
RELEASE_LEASES_OF = "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"
INTERRUPT_OPEN_OF = """
UPDATE attempts SET finished_at = ?, outcome = 'INTERRUPTED' WHERE finished_at = 0 AND holder = ?
"""
INTERRUPT_OPEN_OF_TASK = """
UPDATE attempts SET finished_at = ?, outcome = 'INTERRUPTED'
 WHERE queue_id = ? AND holder = ? AND finished_at = 0
"""
RELEASE_ALL_LEASES = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL"
)
LEASED_VERSIONS = "SELECT id, state, version FROM queues WHERE lease_owner = ?"
# A callback's task (SPEC §11.2), inserted with the outcome it reports: past the owner's limit,
# since a consequence of an accepted task must never fail.
INSERT_CALLBACK = """
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of)
VALUES (?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?)
"""
SET_CALLBACK_ID = "UPDATE queues SET callback_id = ? WHERE id = ?"
# `insert_many`, once per task: the owner's room for all of them is checked first, in the same
# transaction.
INSERT_TASKS = """
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate)
VALUES (?, ?, 'RUNNING', ?, ?, ?, ?, ?, ?, ?, ?)
"""
PURGE_FINISHED = """
DELETE FROM queues WHERE id IN (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < ? LIMIT ?)
"""
# A key's row only keeps its next start: once that is past, no row means the same.
PURGE_IDLE_FLOWS = """
DELETE FROM flows WHERE (owner_id, key) IN (
  SELECT owner_id, key FROM flows WHERE next_start_at < ? LIMIT ?)
"""
COUNT_BY_STATE = "SELECT state, count(*) FROM queues GROUP BY state"
COUNT_OVERDUE = f"""
SELECT count(*) FROM queues
 WHERE state = 'RUNNING' AND estimate_execution_at < ? AND NOT {IN_FLIGHT}
"""
COUNT_ACTIVE_BY_OWNER = """
SELECT owners.id, owners.active_tasks,
       (SELECT count(*) FROM queues
         WHERE owner_id = owners.id AND state IN ('RUNNING', 'PAUSED'))
  FROM owners
"""

ACTIVE = ("RUNNING", "PAUSED")


def insert_unit(
    conn: sqlite3.Connection,
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
    flow: Flow | None = None,
) -> tuple[InsertOutcome, QueueRow | None]:
    """Insert a RUNNING task unless the owner is at its limit; `lease` pre-claims it. Runs
    inside a write unit (its own, or a larger one such as an idempotent registration)."""
    lease_owner, lease_until = lease or (None, None)
    rows = conn.execute(
        INSERT_QUEUE,
        (
            *(queue_id, owner_id, created_at, due, retry_limit, request, metadata),
            *(lease_owner, lease_until, *flow_columns(flow).values(), owner_id, limit),
        ),
    ).fetchall()
    if rows:
        return InsertOutcome.INSERTED, QueueRow.from_row(rows[0])
    if conn.execute(OWNER_EXISTS, (owner_id,)).fetchall():
        return InsertOutcome.LIMIT_REACHED, None
    return InsertOutcome.NO_OWNER, None


async def insert(db: Database, **fields: Any) -> tuple[InsertOutcome, QueueRow | None]:
    """`insert_unit` in its own transaction."""
    return await db.write(lambda conn: insert_unit(conn, **fields))


async def insert_many(
    db: Database, owner_id: str, tasks: Sequence[NewTask], *, limit: int
) -> InsertOutcome:
    """Every one of `tasks` in one transaction, or none when the owner lacks room for them."""

    def unit(conn: sqlite3.Connection) -> InsertOutcome:
        room = conn.execute(OWNER_HAS_ROOM, (limit - len(tasks) + 1, owner_id)).fetchone()
        if room is None:
            return InsertOutcome.NO_OWNER
        if not room[0]:
            return InsertOutcome.LIMIT_REACHED
        conn.executemany(INSERT_TASKS, [task_values(owner_id, task) for task in tasks])
        return InsertOutcome.INSERTED

    return await db.write(unit)


async def get(db: Database, owner_id: str, queue_id: str) -> QueueRow | None:
    row = await db.fetchone(SELECT_QUEUE, (queue_id, owner_id))
    return None if row is None else QueueRow.from_row(row)


async def list_for_owner(
    db: Database,
    owner_id: str,
    *,
    state: str | None,
    schedule_id: str | None,
    order: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[QueueSummaryRow]:
    column = ORDER_COLUMNS[order]
    direction = "DESC" if descending else "ASC"
    where, params = ["owner_id = ?"], [owner_id]
    for name, value in (("state", state), ("schedule_id", schedule_id)):
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    sql = (
        f"SELECT {SUMMARY_COLUMNS} FROM queues WHERE {' AND '.join(where)} "
        f"ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?"
    )
    rows = await db.fetchall(sql, (*params, limit, offset))
    return [QueueSummaryRow(*row) for row in rows]


async def ids_in_state(
    db: Database, owner_id: str, state: str, limit: int
) -> tuple[list[str], int]:
    """The owner's oldest `limit` task ids in `state`, and how many are in it in all."""
    rows = await db.fetchall(SELECT_IDS_IN_STATE, (owner_id, state, limit))
    total = await db.fetchone(COUNT_IN_STATE, (owner_id, state))
    return [row[0] for row in rows], int(total[0]) if total else 0


async def change(
    db: Database, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
) -> QueueRow | Rejected | None:
    """Apply `decide(row)`'s column changes in one transaction, bumping the version.

    None when the task does not exist for this owner. A change that makes a finished task
    active again is refused when the owner already holds `limit` active tasks.
    """

    def unit(conn: sqlite3.Connection) -> QueueRow | Rejected | None:
        rows = conn.execute(SELECT_QUEUE, (queue_id, owner_id)).fetchall()
        if not rows:
            return None
        row = QueueRow.from_row(rows[0])
        decided = decide(row)
        if isinstance(decided, Rejected):
            return decided
        changes = change_columns(decided)
        reactivates = row.state not in ACTIVE and changes.get("state", row.state) in ACTIVE
        if reactivates and limit is not None:
            (room,) = conn.execute(OWNER_HAS_ROOM, (limit, owner_id)).fetchone()
            if not room:
                return Rejected(limit_message(limit))
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


async def attempts(db: Database, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]:
    rows = await db.fetchall(SELECT_ATTEMPTS, (queue_id, limit, offset))
    return [AttemptRow(*row) for row in rows]


# --- the scheduler's calls ----------------------------------------------------------------


async def claim(
    db: Database, *, holder: str, now: int, horizon: int, lease_ms: int, limit: int
) -> list[Due]:
    """Lease up to `limit` RUNNING tasks due by `horizon` that nobody holds; attempts left
    open by their previous (dead) holder are closed as INTERRUPTED."""

    def unit(conn: sqlite3.Connection) -> list[Due]:
        params = {"holder": holder, "now": now, "horizon": horizon}
        claimed = [
            Due(*row) for row in conn.execute(CLAIM, {**params, "lease": lease_ms, "limit": limit})
        ]
        keys = conn.execute(FLOW_KEYS_READY, {**params, "limit": limit}).fetchall()
        for owner_id, key in keys:
            if len(claimed) >= limit:
                break
            conn.execute(FLOW_ROW, (owner_id, key))
            (next_start_at,) = conn.execute(FLOW_NEXT_START, (owner_id, key)).fetchone()
            (busy,) = conn.execute(FLOW_BUSY, (owner_id, key, now)).fetchone()
            rows = conn.execute(
                FLOW_CANDIDATES,
                {**params, "owner": owner_id, "key": key, "limit": limit - len(claimed)},
            )
            candidates = [flow.Candidate(Due(*row[:9]), row[9], row[10]) for row in rows]
            planned = flow.plan(
                candidates, busy=busy, next_start_at=next_start_at, now=now, horizon=horizon
            )
            conn.executemany(LEASE, [(holder, now + lease_ms, due.id) for due in planned.leased])
            conn.execute(FLOW_ADVANCE, (planned.next_start_at, owner_id, key))
            claimed += planned.leased
        if claimed:
            conn.execute(INTERRUPT_CLAIMED, {"holder": holder, "now": now})
        return claimed

    return await db.write(unit)


async def started(db: Database, *, holder: str, due: Due, now: int) -> int | None:
    """Open the attempt row; its number, or None when the task changed since it was held."""
    result: int | None = await db.share(_start_all, (holder, due, now))
    return result


def _start_all(conn: sqlite3.Connection, items: list[tuple[str, Due, int]]) -> list[int | None]:
    rows = _json([(due.id, holder, due.version, now) for holder, due, now in items])
    (startable,) = conn.execute(STARTABLE_NUMBERS, (rows,)).fetchone()
    conn.execute(OPEN_ATTEMPTS, (rows,))
    conn.execute(COUNT_ATTEMPTS, (startable,))
    opened: dict[str, int] = orjson.loads(startable)
    return [opened.get(due.id) for _, due, _ in items]


async def record(
    db: Database,
    *,
    holder: str,
    due: Due,
    result: Result,
    keep: int,
    callback: NewTask | None = None,
) -> bool:
    """Close the attempt row and write the task's outcome in one transaction; False when the
    task changed meanwhile (the attempt row is closed all the same). An ending outcome that
    applies inserts `callback` with it."""
    applied: bool = await db.share(_record_all, _Outcome(holder, due, result, keep, callback))
    return applied


@dataclass(frozen=True, slots=True)
class _Outcome:
    holder: str
    due: Due
    result: Result
    keep: int
    callback: NewTask | None

    def closing(self) -> tuple[Any, ...]:
        """The attempt row's columns, as CLOSE_ATTEMPTS binds them."""
        r = self.result
        return (
            self.due.id,
            r.attempt,
            r.finished_at,
            r.attempt_status_code,
            r.outcome,
            r.error,
            r.response,
        )

    def outcome(self) -> tuple[Any, ...]:
        """The task row's columns, as RECORD_OUTCOMES binds them."""
        r, due = self.result, self.due
        return (
            due.id,
            self.holder,
            due.version,
            r.state,
            r.status_code,
            r.response,
            r.finished_at,
            r.retry_at,
        )


def _record_all(conn: sqlite3.Connection, items: list[_Outcome]) -> list[bool]:
    closing = [o.closing() for o in items]
    conn.execute(CLOSE_ATTEMPTS.format(values=_values(len(items), 7)), _flat(closing))
    rows = _json([(o.due.id, o.holder, o.due.version) for o in items])
    (applicable,) = conn.execute(APPLICABLE_IDS, (rows,)).fetchone()
    applied = set(orjson.loads(applicable))
    outcomes = [o.outcome() for o in items if o.due.id in applied]
    if outcomes:
        conn.execute(RECORD_OUTCOMES.format(values=_values(len(outcomes), 8)), _flat(outcomes))
    for o in items:
        if o.callback is not None and o.result.state is not None and o.due.id in applied:
            _insert_callback(conn, o.due, o.callback)
        if o.result.attempt > o.keep:  # else there is nothing to prune: save the statement
            conn.execute(PRUNE_ATTEMPTS, (o.due.id, o.result.attempt - o.keep))
    return [o.due.id in applied for o in items]


@functools.cache
def _values(rows: int, width: int) -> str:
    """`rows` rows of `width` parameters for a VALUES list."""
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows)


def _flat(rows: list[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


def _json(rows: list[tuple[Any, ...]]) -> str:
    return orjson.dumps(rows).decode()


async def aborted(
    db: Database, *, holder: str, queue_id: str, now: int, started: tuple[int, int] | None
) -> QueueRow | None:
    """Close the aborted attempt (number, start time) if it was opened, and read the task as
    it is now. Only that attempt: a newer one of the task may already be running."""

    def unit(conn: sqlite3.Connection) -> QueueRow | None:
        if started is not None:
            conn.execute(ABORT_OPEN, (now, queue_id, holder, *started))
        rows = conn.execute(SELECT_BY_ID, (queue_id,)).fetchall()
        return QueueRow.from_row(rows[0]) if rows else None

    return await db.write(unit)


def _insert_callback(conn: sqlite3.Connection, parent: Due, task: NewTask) -> None:
    conn.execute(
        INSERT_CALLBACK,
        (
            *(task.queue_id, parent.owner_id, task.created_at, task.due, task.retry_limit),
            *(task.request, task.metadata, parent.id),
        ),
    )
    conn.execute(SET_CALLBACK_ID, (task.queue_id, parent.id))


async def reload(db: Database, queue_id: str) -> QueueRow | None:
    row = await db.fetchone(SELECT_BY_ID, (queue_id,))
    return None if row is None else QueueRow.from_row(row)


async def leased_versions(db: Database, lease_owner: str) -> dict[str, tuple[str, int]]:
    rows = await db.fetchall(LEASED_VERSIONS, (lease_owner,))
    return {row[0]: (row[1], row[2]) for row in rows}


async def renew(db: Database, holder: str, ids: list[str], until: int) -> None:
    """Extend the leases of exactly the tasks `holder` still holds."""
    await _execute(db, RENEW_LEASES, (until, holder, orjson.dumps(ids).decode()))


async def release_lease(db: Database, queue_id: str, lease_owner: str) -> None:
    await _execute(db, RELEASE_LEASE, (queue_id, lease_owner))


async def abandon(db: Database, *, holder: str, queue_id: str, now: int) -> None:
    """Give a task up after a failed write: its open attempt ends INTERRUPTED, its lease goes,
    so this process or another runs it again."""

    def unit(conn: sqlite3.Connection) -> None:
        conn.execute(INTERRUPT_OPEN_OF_TASK, (now, queue_id, holder))
        conn.execute(RELEASE_LEASE, (queue_id, holder))

    await db.write(unit)


async def release_leases_of(db: Database, holder: str, *, now: int) -> None:
    """A stopping holder frees its leases; attempts it leaves open were interrupted."""

    def unit(conn: sqlite3.Connection) -> None:
        conn.execute(INTERRUPT_OPEN_OF, (now, holder))
        conn.execute(RELEASE_LEASES_OF, (holder,))

    await db.write(unit)


async def release_all_leases(db: Database) -> None:
    """At start-up of a server that is alone on its database: every lease is stale."""
    await _execute(db, RELEASE_ALL_LEASES, ())


async def purge_finished(db: Database, *, before: int, batch: int) -> int:
    """Delete up to `batch` tasks finished before `before`, with their attempts."""
    return await _execute(db, PURGE_FINISHED, (before, batch))


async def purge_idle_flows(db: Database, *, before: int, batch: int) -> int:
    return await _execute(db, PURGE_IDLE_FLOWS, (before, batch))


async def count_by_state(db: Database) -> dict[str, int]:
    return {row[0]: row[1] for row in await db.fetchall(COUNT_BY_STATE)}


async def count_overdue(db: Database, *, now: int, late_by: int) -> int:
    """RUNNING tasks due more than `late_by` ms ago that have not started."""
    row = await db.fetchone(COUNT_OVERDUE, (now - late_by,))
    return int(row[0]) if row else 0


async def active_counts(db: Database) -> dict[str, tuple[int, int]]:
    """Per owner: the kept counter of active tasks and a full recount (they must agree)."""
    rows = await db.fetchall(COUNT_ACTIVE_BY_OWNER)
    return {row[0]: (row[1], row[2]) for row in rows}


async def _execute(db: Database, sql: str, params: tuple[Any, ...]) -> int:
    def unit(conn: sqlite3.Connection) -> int:
        return conn.execute(sql, params).rowcount

    return await db.write(unit)
