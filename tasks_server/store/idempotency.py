"""Idempotent task registration: an owner's `Idempotency-Key` remembered with its body, both
as digests (the key's is keyed: SPEC §15.7).

The check and the insert run in one write unit, so concurrent repeats of a key store exactly
one task: the writer runs units one after another, and the second finds the first's row.
Each unit also deletes a few expired rows, which keeps the table bounded without a job.
"""

from __future__ import annotations

import sqlite3

from tasks_server.store.base import Idempotency, InsertOutcome, QueueRow
from tasks_server.store.db import Database, WriteUnit
from tasks_server.store.queues import SELECT_QUEUE

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


async def insert_once(
    db: Database,
    insert: WriteUnit[tuple[InsertOutcome, QueueRow | None]],
    once: Idempotency,
    *,
    owner_id: str,
) -> tuple[InsertOutcome, QueueRow | None]:
    """Run `insert` unless the owner used the key within its TTL; remember the key if it ran.

    An entry whose task has since been deleted no longer counts: the task is registered anew.
    """

    def unit(conn: sqlite3.Connection) -> tuple[InsertOutcome, QueueRow | None]:
        conn.execute(PURGE_EXPIRED, (once.now, PURGE_BATCH))
        entry = conn.execute(SELECT_ENTRY, (owner_id, once.key_digest, once.now)).fetchone()
        if entry is not None:
            if bytes(entry[0]) != once.body_digest:
                return InsertOutcome.KEY_REUSED, None
            row = conn.execute(SELECT_QUEUE, (entry[1], owner_id)).fetchone()
            if row is not None:
                return InsertOutcome.REPLAYED, QueueRow.from_row(row)
        outcome, row = insert(conn)
        if row is not None:
            expires = once.now + once.ttl_ms
            remembered = (owner_id, once.key_digest, once.body_digest, row.id, expires)
            conn.execute(UPSERT_ENTRY, remembered)
        return outcome, row

    return await db.write(unit)
