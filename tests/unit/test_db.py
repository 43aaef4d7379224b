"""The SQLite store's writer: migrations and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tasks_server.store.base import StoreError, StoreUnavailable
from tasks_server.store.db import Database, migrate
from tasks_server.store.schema import MIGRATIONS


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = Database(tmp_path / "tasks.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def test_migrations_apply_in_order_and_trigger_bodies_stay_whole() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    triggers = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    assert {"queues_active_insert", "queues_active_delete", "queues_active_update"} <= triggers
    assert migrate(conn) == len(MIGRATIONS)  # idempotent


async def test_a_transaction_level_error_fails_the_batch_at_once(db: Database) -> None:
    """SQLITE_FULL (or BUSY, IOERR) is the transaction's: re-running each unit alone would meet
    it again, after another busy timeout each; the batch fails as one."""
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
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert len(calls) < 50  # not re-run unit by unit


async def test_a_unit_error_fails_only_that_unit(db: Database) -> None:
    await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER UNIQUE)"))

    def insert(value: int) -> Callable[[sqlite3.Connection], None]:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (?)", (value,))

        return unit

    writes = (db.write(insert(v)) for v in (1, 2, 2, 3))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r) for r in results] == [type(None), type(None), StoreError, type(None)]
    assert isinstance(results[2].__cause__, sqlite3.IntegrityError)
    rows = await db.fetchall("SELECT v FROM t ORDER BY v")
    assert [row[0] for row in rows] == [1, 2, 3]


async def _held_writer(db: Database) -> tuple[threading.Event, asyncio.Future[None]]:
    """Keep the writer busy until the event is set, so the next writes form one batch."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(10)

    held = asyncio.ensure_future(db.write(hold))
    await asyncio.to_thread(entered.wait, 10)
    return release, held


async def test_shared_writes_queued_together_run_once_for_all(db: Database) -> None:
    calls: list[list[int]] = []

    def double(conn: sqlite3.Connection, items: list[int]) -> list[int]:
        calls.append(items)
        return [2 * item for item in items]

    release, held = await _held_writer(db)
    shared = [asyncio.ensure_future(db.share(double, n)) for n in range(5)]
    plain = asyncio.ensure_future(db.write(lambda conn: "plain"))
    await asyncio.sleep(0)  # let every write reach the queue
    release.set()
    await held
    assert await asyncio.gather(*shared) == [0, 2, 4, 6, 8]
    assert await plain == "plain"
    assert calls == [[0, 1, 2, 3, 4]]


async def test_the_writes_of_one_loop_turn_reach_the_writer_together(db: Database) -> None:
    """An idle writer is handed a loop turn's units at once, not woken by the first one to
    commit it alone: a burst's starts and outcomes cost one transaction per turn."""
    calls: list[list[int]] = []

    def double(conn: sqlite3.Connection, items: list[int]) -> list[int]:
        calls.append(items)
        return [2 * item for item in items]

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a writer woken mid-turn would get the GIL at once
    try:
        shared = [asyncio.ensure_future(db.share(double, n)) for n in range(200)]
        assert await asyncio.gather(*shared) == [2 * n for n in range(200)]
    finally:
        sys.setswitchinterval(switching)
    assert calls == [list(range(200))]


async def test_a_failing_item_of_a_shared_write_fails_only_itself(db: Database) -> None:

    def checked(conn: sqlite3.Connection, items: list[int]) -> list[int]:
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return items

    release, held = await _held_writer(db)
    shared = [asyncio.ensure_future(db.share(checked, n)) for n in (1, -1, 2)]
    await asyncio.sleep(0)
    release.set()
    await held
    results = await asyncio.gather(*shared, return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError)


async def test_close_commits_what_was_queued_and_refuses_later_writes(tmp_path: Path) -> None:
    db = Database(tmp_path / "tasks.db")
    await db.open()
    await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
    release, held = await _held_writer(db)
    queued = [
        asyncio.ensure_future(
            db.write(lambda conn, v=v: conn.execute("INSERT INTO t VALUES (?)", (v,)))
        )
        for v in range(3)
    ]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(db.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    await held
    await asyncio.gather(*queued)
    with pytest.raises(RuntimeError, match="not open"):
        await db.write(lambda conn: None)
    reopened = Database(tmp_path / "tasks.db")
    await reopened.open()
    try:
        assert [row[0] for row in await reopened.fetchall("SELECT v FROM t ORDER BY v")] == [
            0,
            1,
            2,
        ]
    finally:
        await reopened.close()


async def test_a_cancelled_caller_does_not_cut_its_write(db: Database) -> None:
    await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
    release, held = await _held_writer(db)
    write = asyncio.ensure_future(db.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)")))
    await asyncio.sleep(0)
    write.cancel()
    release.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await write
    await db.write(lambda conn: None)  # after the batch that held the insert
    assert [row[0] for row in await db.fetchall("SELECT v FROM t")] == [1]
