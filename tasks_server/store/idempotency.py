"""Idempotent task registration: an owner's `Idempotency-Key` remembered with its body.

The check and the insert run in one write unit, so concurrent repeats of a key store exactly
one task: the writer runs units one after another, and the second finds the first's row.
Each unit also deletes a few expired rows, which keeps the table bounded without a job.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from tasks_server.store.db import Database, WriteUnit
from tasks_server.store.queues import SELECT_QUEUE, InsertOutcome, QueueRow

SELECT_ENTRY = """
SELECT body_digest, queue_id FROM idempotency WHERE owner_id = ? AND key = ? AND expires_at > ?
"""
UPSERT_ENTRY = """
INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (owner_id, key) DO UPDATE
   SET body_digest = excluded.body_digest, queue_id = excluded.queue_id,
       expires_at = excluded.expires_at
"""
PURGE_EXPIRED = """
DELETE FROM idempotency
 WHERE rowid IN (SELECT rowid FROM idempotency WHERE expires_at <= ? LIMIT ?)
"""
# Rows purged per registration: more than one, so the purge outpaces expiry.
PURGE_BATCH = 8


@dataclass(frozen=True, slots=True)
class Replayed:
    """The key was used with this body before: the task it registered, as it is now."""

    row: QueueRow


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was used with another body (the API answers 422)."""


async def insert_once(
    db: Database,
    insert: WriteUnit[tuple[InsertOutcome, QueueRow | None]],
    *,
    owner_id: str,
    key: str,
    body_digest: bytes,
    now: int,
    ttl_ms: int,
) -> tuple[InsertOutcome, QueueRow | None] | Replayed | KeyReused:
    """Run `insert` unless the owner used `key` within `ttl_ms`; remember the key if it ran.

    An entry whose task has since been deleted no longer counts: the task is registered anew.
    """

    def unit(
        conn: sqlite3.Connection,
    ) -> tuple[InsertOutcome, QueueRow | None] | Replayed | KeyReused:
        conn.execute(PURGE_EXPIRED, (now, PURGE_BATCH))
        entry = conn.execute(SELECT_ENTRY, (owner_id, key, now)).fetchone()
        if entry is not None:
            if bytes(entry[0]) != body_digest:
                return KeyReused()
            row = conn.execute(SELECT_QUEUE, (entry[1], owner_id)).fetchone()
            if row is not None:
                return Replayed(QueueRow.from_row(row))
        outcome, row = insert(conn)
        if row is not None:
            conn.execute(UPSERT_ENTRY, (owner_id, key, body_digest, row.id, now + ttl_ms))
        return outcome, row

    return await db.write(unit)
