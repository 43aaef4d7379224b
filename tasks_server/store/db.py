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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from tasks_server.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
# Runs on the writer thread inside the batch's transaction: no awaiting, no event-loop state.
WriteUnit = Callable[[sqlite3.Connection], T]

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
_PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


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
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("database migrated to version %d", number)
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


def _transaction(conn: sqlite3.Connection, units: list[WriteUnit[Any]]) -> list[Any]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [unit(conn) for unit in units]
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return results


class Database:
    """The store's connections: one writer (group commit) and one reader (WAL snapshot reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[WriteUnit[Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        try:
            self._writer = await self._on_writer(_open_writer, self.path)
        except BaseException:
            self._thread.shutdown()
            self._thread = None
            raise
        self._reader = await _connect(self.path)
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None:
            await self._on_writer(self._writer.close)
        if self._thread is not None:
            self._thread.shutdown()
        self._reader = self._writer = self._thread = None

    async def write(self, unit: WriteUnit[T]) -> T:
        """Run `unit` in a write transaction; return its result once durably committed."""
        if self._task is None or self._task.done():
            raise RuntimeError("database is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((unit, future))
        return await asyncio.shield(future)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "database is not open"
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run_batch(self, batch: list[tuple[WriteUnit[Any], asyncio.Future[Any]]]) -> None:
        assert self._writer is not None
        try:
            results = await self._on_writer(_transaction, self._writer, [u for u, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or _transaction_error(exc):
                for _, future in batch:
                    _settle(future, exc=exc)
                return
            # One unit failed: nothing was committed. Run each alone so only it fails.
            for item in batch:
                await self._run_batch([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _transaction_error(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _TRANSACTION_ERRORS


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


# --- what backups ask of a database file ----------------------------------------------------

SELF_CONTAINED = "PRAGMA journal_mode = DELETE"
INTEGRITY_CHECK = "PRAGMA integrity_check"


def make_self_contained(conn: sqlite3.Connection) -> None:
    """No -wal beside the file: what a backup archive and a restore need."""
    conn.execute(SELF_CONTAINED)


def integrity(conn: sqlite3.Connection) -> str:
    """SQLite's integrity check: "ok", or its findings joined by "; "."""
    return "; ".join(str(row[0]) for row in conn.execute(INTEGRITY_CHECK).fetchall())
