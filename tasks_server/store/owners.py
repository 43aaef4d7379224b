"""Owner rows: creation, lookup of key digests, deletion."""

from __future__ import annotations

import sqlite3

from tasks_server.store.base import DeleteOutcome, OwnerRecord
from tasks_server.store.db import Database

INSERT_OWNER = """
INSERT INTO owners (id, name, key_digest, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING RETURNING id
"""
SELECT_KEY_DIGEST = "SELECT key_digest FROM owners WHERE id = ?"
SELECT_OWNER = """
SELECT id, name, created_at, active_tasks AS active FROM owners WHERE id = ? AND name = ?
"""
COUNT_ACTIVE = "SELECT active_tasks FROM owners WHERE id = ?"
DELETE_OWNER = "DELETE FROM owners WHERE id = ? AND name = ?"


async def create_owner(
    db: Database, *, owner_id: str, name: str, key_digest: bytes, created_at: int
) -> bool:
    """Insert the owner; False when the name is taken."""

    def unit(conn: sqlite3.Connection) -> bool:
        return bool(conn.execute(INSERT_OWNER, (owner_id, name, key_digest, created_at)).fetchall())

    return await db.write(unit)


async def key_digest(db: Database, owner_id: str) -> bytes | None:
    row = await db.fetchone(SELECT_KEY_DIGEST, (owner_id,))
    return None if row is None else bytes(row[0])


async def get_owner(db: Database, owner_id: str, name: str) -> OwnerRecord | None:
    row = await db.fetchone(SELECT_OWNER, (owner_id, name))
    return None if row is None else _record(row)


async def delete_owner(db: Database, owner_id: str, name: str) -> DeleteOutcome:
    """Delete the owner (and its finished tasks) unless it still has queued tasks."""

    def unit(conn: sqlite3.Connection) -> DeleteOutcome:
        row = conn.execute(COUNT_ACTIVE, (owner_id,)).fetchone()
        if row is not None and row[0]:
            exists = conn.execute(SELECT_OWNER, (owner_id, name)).fetchall()
            return DeleteOutcome.HAS_TASKS if exists else DeleteOutcome.NOT_FOUND
        cursor = conn.execute(DELETE_OWNER, (owner_id, name))
        return DeleteOutcome.DELETED if cursor.rowcount else DeleteOutcome.NOT_FOUND

    return await db.write(unit)


def _record(row: sqlite3.Row) -> OwnerRecord:
    return OwnerRecord(
        id=row["id"], name=row["name"], created_at=row["created_at"], tasks_in_queue=row["active"]
    )
