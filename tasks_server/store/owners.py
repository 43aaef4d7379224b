"""Owner rows: creation, key digests and signing secrets (with rotation), deletion."""

from __future__ import annotations

import sqlite3
from typing import Any

from tasks_server.store.base import Credentials, DeleteOutcome, OwnerRecord, Reseal
from tasks_server.store.db import Database

INSERT_OWNER = """
INSERT INTO owners (id, name, key_digest, signing_secret, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING RETURNING id
"""
SELECT_KEY_DIGESTS = (
    "SELECT key_digest, previous_key_digest, previous_key_until FROM owners WHERE id = ?"
)
ROTATE_KEY = """
UPDATE owners SET previous_key_digest = key_digest, previous_key_until = ?, key_digest = ?
 WHERE id = ? AND name = ? RETURNING id
"""
SELECT_SIGNING = """
SELECT signing_secret, previous_signing_secret, previous_signing_until FROM owners WHERE id = ?
"""
SET_MISSING_SIGNING = "UPDATE owners SET signing_secret = ? WHERE id = ? AND signing_secret IS NULL"
SELECT_SIGNING_BY_NAME = "SELECT signing_secret FROM owners WHERE id = ? AND name = ?"
ROTATE_SIGNING = """
UPDATE owners SET previous_signing_secret = ?, previous_signing_until = ?, signing_secret = ?
 WHERE id = ?
"""
SELECT_OWNER = """
SELECT id, name, created_at, active_tasks AS active FROM owners WHERE id = ? AND name = ?
"""
COUNT_ACTIVE = "SELECT active_tasks FROM owners WHERE id = ?"
DELETE_OWNER = "DELETE FROM owners WHERE id = ? AND name = ?"


async def create_owner(
    db: Database,
    *,
    owner_id: str,
    name: str,
    key_digest: bytes,
    created_at: int,
    signing_secret: bytes | None = None,
) -> bool:
    """Insert the owner; False when the name is taken."""
    params = (owner_id, name, key_digest, signing_secret, created_at)

    def unit(conn: sqlite3.Connection) -> bool:
        return bool(conn.execute(INSERT_OWNER, params).fetchall())

    return await db.write(unit)


async def key_digests(db: Database, owner_id: str) -> Credentials | None:
    row = await db.fetchone(SELECT_KEY_DIGESTS, (owner_id,))
    return None if row is None else _credentials(row)


async def rotate_key(
    db: Database, owner_id: str, name: str, digest: bytes, previous_until: int
) -> bool:
    """Make `digest` the owner's key digest; the old one stays valid until `previous_until`."""

    def unit(conn: sqlite3.Connection) -> bool:
        params = (previous_until, digest, owner_id, name)
        return bool(conn.execute(ROTATE_KEY, params).fetchall())

    return await db.write(unit)


async def signing_secrets(
    db: Database, owner_id: str, missing: bytes | None = None
) -> Credentials | None:
    """The sealed signing secrets; `missing` is stored first when the owner has none yet."""

    def unit(conn: sqlite3.Connection) -> Credentials | None:
        conn.execute(SET_MISSING_SIGNING, (missing, owner_id))
        row = conn.execute(SELECT_SIGNING, (owner_id,)).fetchone()
        return None if row is None else _credentials(row)

    if missing is not None:
        return await db.write(unit)
    row = await db.fetchone(SELECT_SIGNING, (owner_id,))
    return None if row is None else _credentials(row)


async def rotate_signing(
    db: Database, owner_id: str, name: str, previous_until: int, reseal: Reseal
) -> bool:
    """Replace the signing secret in one transaction; False when the owner is not found.

    A sealed blob is bound to its column, so `reseal` seals the old secret again for the
    previous column.
    """

    def unit(conn: sqlite3.Connection) -> bool:
        row = conn.execute(SELECT_SIGNING_BY_NAME, (owner_id, name)).fetchone()
        if row is None:
            return False
        previous, current = reseal(None if row[0] is None else bytes(row[0]))
        conn.execute(ROTATE_SIGNING, (previous, previous_until, current, owner_id))
        return True

    return await db.write(unit)


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


def _credentials(row: Any) -> Credentials:
    current, previous, until = row
    return Credentials(
        None if current is None else bytes(current),
        None if previous is None else bytes(previous),
        until,
    )


def _record(row: sqlite3.Row) -> OwnerRecord:
    return OwnerRecord(
        id=row["id"], name=row["name"], created_at=row["created_at"], tasks_in_queue=row["active"]
    )
