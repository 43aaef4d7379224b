"""SQLite connections, migrations and the single writer with group commit.

SQLite has one writer at a time, and with ``synchronous=FULL`` every commit is an fsync.
All writes of this process therefore go through one connection owned by one thread: the
write units queued while a commit is under way are run together in the next transaction,
so many requests share one fsync. A unit's future resolves only after its COMMIT, which is
what lets a route acknowledge a write as durable.

A write unit is a plain function of the connection, and a whole batch (BEGIN, every unit,
COMMIT) runs on the writer thread in one hop from the event loop. Awaiting each statement
instead would cost one loop iteration per statement, and under load a loop iteration is
long: that capped writes at about one per iteration.

The writes the scheduler makes for every attempt (its start, its outcome) are *shared*: each
caller queues an item, and a batch runs one `SharedWrite` over all the items of its kind, a
few statements for hundreds of attempts. Statement count matters beyond SQLite's own work:
the sqlite3 module releases the GIL around every statement, and while the event loop is busy
the writer thread waits for it again each time (up to the 5 ms switch interval), so one
statement per attempt kept the writer waiting most of its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from tasks_server.files import private_dir
from tasks_server.store.base import StoreError, StoreOpenError, StoreUnavailable
from tasks_server.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
# Runs on the writer thread inside the batch's transaction: no awaiting, no event-loop state.
WriteUnit = Callable[[sqlite3.Connection], T]
# The same, for the items of many callers at once: one result per item, in order.
SharedWrite = Callable[[sqlite3.Connection, list[Any]], list[Any]]

_MAX_BATCH = 512
# Errors of the transaction, not of one unit: re-running the units alone would only meet
# them again (after another busy timeout each), so the whole batch fails at once.
_TRANSACTION_ERRORS = frozenset(
    (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    )
)
# Errors that pass (room made on the disk, a flaky disk, a lock released): StoreUnavailable.
_UNAVAILABLE = frozenset(
    (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL)
)
_PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


_Pending = tuple[SharedWrite, Any, "asyncio.Future[Any]"]


class DatabaseTooNew(RuntimeError):
    """The database was written by a newer version of tasks-server."""


async def _connect(path: Path) -> aiosqlite.Connection:
    """Open and prepare a reader connection (pragmas: `_PRAGMAS`, the one list)."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn


def _open_writer(path: Path) -> sqlite3.Connection:
    """The writer connection, prepared and migrated; called on the writer thread."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in order; return the schema version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise DatabaseTooNew(
            f"database schema version {version} is newer than this tasks-server "
            f"supports ({len(MIGRATIONS)})"
        )
    # Off while migrating, as SQLite's own recipe for rebuilding a table asks (a rebuilt
    # table's rows would otherwise take their dependents with them); checked before each
    # commit instead.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(script):
                    conn.execute(statement)
                if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise sqlite3.IntegrityError(f"migration {number} broke a foreign key")
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("database migrated to version %d", number)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return len(MIGRATIONS)


def _statements(script: str) -> Iterable[str]:
    """The script's statements; a trigger body's own semicolons stay inside its statement."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \n;"):
        yield pending.strip()


def _each(conn: sqlite3.Connection, units: list[WriteUnit[Any]]) -> list[Any]:
    return [unit(conn) for unit in units]


def _transaction(conn: sqlite3.Connection, batch: list[tuple[SharedWrite, Any]]) -> list[Any]:
    """Run a batch in one transaction: each kind of write once, over its items in queue
    order, kinds in the order they first appear (the writes of a batch were all queued
    concurrently, so any order among kinds is one their callers could have seen)."""
    positions: dict[SharedWrite, list[int]] = {}
    for position, (write, _) in enumerate(batch):
        positions.setdefault(write, []).append(position)
    results: list[Any] = [None] * len(batch)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write, at in positions.items():
            for position, result in zip(at, write(conn, [batch[i][1] for i in at]), strict=True):
                results[position] = result
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return results


class Database:
    """The store's connections: one writer (group commit) and one reader (WAL snapshot reads).

    The writer connection lives on its own thread, which takes the next batch as soon as the
    last one committed: the event loop only queues units and settles their futures (one
    callback per batch), so a busy loop never holds up the writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: aiosqlite.Connection | None = None
        # Units reach the writer a loop turn at a time: one hand-over (and at most one wake-up
        # of the writer thread) per turn, however many attempts started or ended in it.
        self._pending: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._turn: list[_Pending] = []  # this loop turn's units, not yet handed over
        self._thread: threading.Thread | None = None
        self._accepting = False

    async def open(self) -> None:
        """Migrate and open the connections; StoreOpenError says why they cannot be."""
        try:
            await self._open()
        except (sqlite3.Error, OSError, DatabaseTooNew) as exc:
            await self.close()
            raise StoreOpenError(f"cannot open the database {self.path}: {exc}") from exc

    async def _open(self) -> None:
        private_dir(self.path.parent)
        if not self.path.exists():  # 0600: SQLite gives its WAL and SHM the file's mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        thread = threading.Thread(
            target=self._write_thread, args=(loop, opened), name="sqlite-writer", daemon=True
        )
        thread.start()
        try:
            await opened
        except BaseException:
            await asyncio.to_thread(thread.join)
            raise
        self._thread, self._accepting = thread, True
        self._reader = await _connect(self.path)

    async def close(self) -> None:
        """Commit every write queued so far, then close the connections."""
        self._accepting = False
        if self._thread is not None:
            self._hand_over()
            self._pending.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def write(self, unit: WriteUnit[T]) -> T:
        """Run `unit` in a write transaction; return its result once durably committed."""
        result: T = await self.share(_each, unit)
        return result

    async def share(self, write: SharedWrite, item: Any) -> Any:
        """Have `write` run over `item` with the other items of its kind queued meanwhile;
        return this item's result once durably committed."""
        if not self._accepting:  # (cleared by the writer thread as it ends, too)
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._turn:
            loop.call_soon(self._hand_over)
        self._turn.append((write, item, future))
        # A cancelled caller cancels only its future: the write goes on (settling skips a
        # future already done), so no shield is needed to keep it whole.
        with _available():
            return await future

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "database is not open"
        with _available():
            return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    def _write_thread(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        try:
            conn = _open_writer(self.path)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, opened, None, exc)
            return
        loop.call_soon_threadsafe(_settle, opened)
        try:
            while (batch := self._next_batch()) is not None:
                outcomes = _run_batch(conn, [(write, item) for write, item, _ in batch])
                futures = [future for *_, future in batch]
                loop.call_soon_threadsafe(_settle_all, futures, outcomes)
        finally:
            self._accepting = False
            conn.close()

    def _hand_over(self) -> None:
        """Queue this turn's units for the writer."""
        if self._turn:
            self._pending.put(self._turn)
            self._turn = []

    def _next_batch(self) -> list[_Pending] | None:
        """What was handed over while the last batch ran (waiting for a loop turn's units if
        nothing was), whole turns until `_MAX_BATCH` is reached; None once `close()` asked to
        stop and nothing is left before that."""
        first = self._pending.get()
        if first is None:
            return None
        batch = first
        while len(batch) < _MAX_BATCH:
            try:
                pending = self._pending.get_nowait()
            except queue.Empty:
                break
            if pending is None:
                self._pending.put(None)  # stop after this batch
                break
            batch += pending
        return batch


# A unit's result, or the exception that failed it.
_Settled = tuple[Any, BaseException | None]


def _run_batch(conn: sqlite3.Connection, writes: list[tuple[SharedWrite, Any]]) -> list[_Settled]:
    try:
        return [(result, None) for result in _transaction(conn, writes)]
    except Exception as exc:
        if len(writes) == 1 or _transaction_error(exc):
            return [(None, exc)] * len(writes)
        # One unit failed: nothing was committed. Run each alone so only it fails.
        return [_run_batch(conn, [write])[0] for write in writes]


def _transaction_error(exc: Exception) -> bool:
    return _primary_code(exc) in _TRANSACTION_ERRORS


def _primary_code(exc: Exception) -> int | None:
    """SQLite's result code without its extended part (SQLITE_IOERR_FSYNC is SQLITE_IOERR)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


@contextlib.contextmanager
def _available() -> Iterator[None]:
    """Raise the driver's errors as StoreUnavailable when they pass, else as StoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        if _primary_code(exc) in _UNAVAILABLE:
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        raise StoreError(f"SQLite: {exc}") from exc


def _settle_all(futures: list[asyncio.Future[Any]], outcomes: list[_Settled]) -> None:
    for future, (result, exc) in zip(futures, outcomes, strict=True):
        _settle(future, result, exc)


def _settle(
    future: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
