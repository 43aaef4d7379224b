"""The SQLite store's writer: migrations and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tasks_server.store.db import Database, migrate
from tasks_server.store.schema import MIGRATIONS


def test_migrations_apply_in_order_and_trigger_bodies_stay_whole() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    triggers = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    assert {"queues_active_insert", "queues_active_delete", "queues_active_update"} <= triggers
    assert migrate(conn) == len(MIGRATIONS)  # idempotent


async def test_a_transaction_level_error_fails_the_batch_at_once(tmp_path: Path) -> None:
    """SQLITE_FULL (or BUSY, IOERR) is the transaction's: re-running each unit alone would meet
    it again, after another busy timeout each; the batch fails as one."""
    db = Database(tmp_path / "tasks.db")
    await db.open()
    try:
        await db.write(lambda conn: conn.execute("CREATE TABLE filler (data BLOB)"))
        await db.write(
            lambda conn: conn.execute(
                "PRAGMA max_page_count = " + str(conn.execute("PRAGMA page_count").fetchone()[0])
            )
        )
        calls: list[int] = []

        def fill(conn: sqlite3.Connection) -> None:
            calls.append(1)
            conn.execute("INSERT INTO filler VALUES (?)", (b"x" * 100_000,))

        results = await asyncio.gather(*(db.write(fill) for _ in range(50)), return_exceptions=True)
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        assert len(calls) < 50  # not re-run unit by unit
    finally:
        await db.close()


async def test_a_unit_error_fails_only_that_unit(tmp_path: Path) -> None:
    db = Database(tmp_path / "tasks.db")
    await db.open()
    try:
        await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER UNIQUE)"))

        def insert(value: int) -> Callable[[sqlite3.Connection], None]:
            def unit(conn: sqlite3.Connection) -> None:
                conn.execute("INSERT INTO t VALUES (?)", (value,))

            return unit

        writes = (db.write(insert(v)) for v in (1, 2, 2, 3))
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert [type(r) for r in results] == [
            type(None),
            type(None),
            sqlite3.IntegrityError,
            type(None),
        ]
        rows = await db.fetchall("SELECT v FROM t ORDER BY v")
        assert [row[0] for row in rows] == [1, 2, 3]
    finally:
        await db.close()
