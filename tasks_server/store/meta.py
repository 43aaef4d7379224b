"""The `meta` table (name → value) and the questions start-up asks of a database."""

from __future__ import annotations

import sqlite3

from tasks_server.store.base import CipherCheck

CIPHER_CHECK = "cipher_check"  # the row holding the check value sealed with the cipher key
SELECT_META = "SELECT value FROM meta WHERE name = ?"
INSERT_META = "INSERT INTO meta (name, value) VALUES (?, ?)"
# /health's write: one row rewritten, so each probe appends to the WAL as a registration does.
PROBE_WRITE = "INSERT OR REPLACE INTO meta (name, value) VALUES ('write_probe', x'')"
HAS_DATA = "SELECT EXISTS (SELECT 1 FROM owners) OR EXISTS (SELECT 1 FROM queues)"
# Any one sealed request: it opens with the right key only.
SEALED_SAMPLE = "SELECT id, request FROM queues LIMIT 1"


def get(conn: sqlite3.Connection, name: str) -> bytes | None:
    row = conn.execute(SELECT_META, (name,)).fetchone()
    return None if row is None else bytes(row[0])


def put(conn: sqlite3.Connection, name: str, value: bytes) -> None:
    conn.execute(INSERT_META, (name, value))


def probe_write(conn: sqlite3.Connection) -> None:
    conn.execute(PROBE_WRITE)


def has_data(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute(HAS_DATA).fetchone()[0])


def sealed_sample(conn: sqlite3.Connection) -> tuple[str, bytes] | None:
    """A task id and its sealed request, or None when the database has no task."""
    row = conn.execute(SEALED_SAMPLE).fetchone()
    return None if row is None else (row[0], bytes(row[1]))


def check_cipher(conn: sqlite3.Connection, check: CipherCheck) -> None:
    """Run the cipher `check` on this database, recording the check value it returns."""
    value = check(get(conn, CIPHER_CHECK), sealed_sample(conn))
    if value is not None:
        put(conn, CIPHER_CHECK, value)
