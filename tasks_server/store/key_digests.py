"""Keys a database holds in plain text from before SPEC §15.7, digested once (SQLite).

Migration 5 marks the database; start-up digests once it has checked the cipher key (the
migrations run before it has one), and takes the mark in the same transaction, so a restart
never digests a digest. `secure_delete` zeroes the cells the rewrite frees, so the plain
values do not linger in the file's free space.
"""

from __future__ import annotations

import sqlite3

from tasks_server.store.base import KeyDigests

TAKE_MARK = "DELETE FROM meta WHERE name = 'plain_keys'"
# Each step: the rows as (owner id, plain key, *what the update's WHERE binds), the update.
SELECT_IDEMPOTENCY = "SELECT owner_id, key, owner_id, key FROM idempotency"
DIGEST_IDEMPOTENCY = "UPDATE idempotency SET key = ? WHERE owner_id = ? AND key = ?"
SELECT_FLOWS = "SELECT owner_id, key, owner_id, key FROM flows"
DIGEST_FLOW = "UPDATE flows SET key = ? WHERE owner_id = ? AND key = ?"
SELECT_QUEUE_FLOWS = "SELECT owner_id, flow_key, id FROM queues WHERE flow_key IS NOT NULL"
DIGEST_QUEUE_FLOW = "UPDATE queues SET flow_key = ? WHERE id = ?"


def digest_plain(conn: sqlite3.Connection, digests: KeyDigests) -> int:
    """`TaskStore.digest_plain_keys` as a write unit."""
    if conn.execute(TAKE_MARK).rowcount == 0:
        return 0
    steps = (
        (SELECT_IDEMPOTENCY, DIGEST_IDEMPOTENCY, digests.idempotency_key),
        (SELECT_FLOWS, DIGEST_FLOW, digests.flow_key),
        (SELECT_QUEUE_FLOWS, DIGEST_QUEUE_FLOW, digests.flow_key),
    )
    (secure,) = conn.execute("PRAGMA secure_delete").fetchone()
    conn.execute("PRAGMA secure_delete = ON")
    changed = 0
    try:
        for select, update, digest in steps:
            rows = conn.execute(select).fetchall()
            conn.executemany(update, [(digest(o, k), *where) for o, k, *where in rows])
            changed += len(rows)
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(secure)}")
    return changed
