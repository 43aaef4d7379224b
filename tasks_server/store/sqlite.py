"""The SQLite driver: one file, one writer thread with group commit (``db``), reads on a
reader connection, and the injectable clock a lone server keeps.

Single runners hold a ``flock`` on a file beside the database, so a dead holder's role
passes at once. Several worker processes of one server may share the file (CLUSTER_MODE):
they find each other's changes by reconciling their leases, not by notices.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from tasks_server.files import private_dir
from tasks_server.store.base import Notice, StoreUnavailable
from tasks_server.store.db import Database, SharedWrite
from tasks_server.store.driver import Fill, Row, SharedUnit, T, Unit, run_to_end
from tasks_server.store.engine import Store
from tasks_server.store.queries import Queries
from tasks_server.timeutil import now_ms

# A lone server clears every lease when it starts; this bounds only a crashed cluster worker's.
LEASE_MS = 60_000
# /health writes at most this often (each write is an fsync); in between it repeats the last
# write's answer.
PROBE_WRITE_S = 1.0
_QUERIES = Queries("sqlite", qmark=True)
# Bound parameters per statement: SQLite allows 32,766; a table of rows is cut below that.
_MAX_PARAMETERS = 30_000


class FileLock:
    """A held ``flock``; released by `release()` or when the process ends."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    async def held(self) -> bool:
        """Until released: a lock on an open file cannot be taken away."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def try_lock(path: Path) -> FileLock | None:
    """Take the lock on `path` without waiting; None when another holder has it."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return FileLock(fd)


class _Tx:
    """Statements by name, as SQLite binds them: arrays as JSON text, a table of rows as a
    `VALUES` list."""

    def __init__(self, queries: Queries, clock: Callable[[], int]) -> None:
        self._queries = queries
        self._clock = clock

    async def _all(self, text: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def _count(self, text: str, params: Sequence[Any]) -> int:
        raise NotImplementedError

    async def fetch(self, name: str, *args: Any, fill: Fill = ()) -> list[Row]:
        return await self._all(self._queries.text(name, fill), _bind(args))

    async def fetchrow(self, name: str, *args: Any, fill: Fill = ()) -> Row | None:
        rows = await self.fetch(name, *args, fill=fill)
        return rows[0] if rows else None

    async def fetchval(self, name: str, *args: Any) -> Any:
        row = await self.fetchrow(name, *args)
        return None if row is None else row[0]

    async def execute(self, name: str, *args: Any) -> int:
        return await self._count(self._queries.text(name), _bind(args))

    async def fetch_rows(self, name: str, rows: Sequence[Row]) -> list[Row]:
        found: list[Row] = []
        for text, params in _tables(self._queries.text(name), rows):
            found += await self._all(text, params)
        return found

    async def execute_rows(self, name: str, rows: Sequence[Row]) -> int:
        return sum([await self._count(t, p) for t, p in _tables(self._queries.text(name), rows)])

    async def now(self) -> int:
        return self._clock()

    async def notify(self, queue_id: str, version: int | None) -> None:
        """Nothing to tell: see the module note."""


class _WriterTx(_Tx):
    """The writer's transaction: every statement a direct call, so a unit never suspends."""

    def __init__(self, conn: sqlite3.Connection, queries: Queries, clock: Callable[[], int]):
        super().__init__(queries, clock)
        self._conn = conn

    async def _all(self, text: str, params: Sequence[Any]) -> list[Row]:
        rows: list[Row] = self._conn.execute(text, params).fetchall()
        return rows

    async def _count(self, text: str, params: Sequence[Any]) -> int:
        rowcount = self._conn.execute(text, params).rowcount
        if rowcount >= 0:
            return rowcount
        # The sqlite3 module counts only statements that begin with INSERT, UPDATE or DELETE,
        # not `WITH v AS (VALUES …) UPDATE …`.
        (changes,) = self._conn.execute("SELECT changes()").fetchone()
        return int(changes)


class _ReaderTx(_Tx):
    def __init__(self, db: Database, queries: Queries, clock: Callable[[], int]) -> None:
        super().__init__(queries, clock)
        self._db = db

    async def _all(self, text: str, params: Sequence[Any]) -> list[Row]:
        return list(await self._db.fetchall(text, params))

    async def _count(self, text: str, params: Sequence[Any]) -> int:
        raise RuntimeError("a read unit wrote")


def _bind(args: Sequence[Any]) -> Sequence[Any]:
    if not any(isinstance(arg, list) for arg in args):
        return args
    return [orjson.dumps(arg).decode() if isinstance(arg, list) else arg for arg in args]


def _tables(text: str, rows: Sequence[Row]) -> Iterator[tuple[str, list[Any]]]:
    """`text` with its ``{values}`` filled for `rows`, cut to stay within the parameters a
    statement may bind."""
    if not rows:
        return
    width = len(rows[0])
    step = max(1, _MAX_PARAMETERS // width)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        params = [value for row in chunk for value in row]
        yield text.format(values=_values(len(chunk), width)), params


@functools.lru_cache(maxsize=64)
def _values(rows: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows)


class OneConnection:
    """Transactions on one connection of the caller's, without the writer thread: for a file
    handled outside a running server (a restore's copy). Its units never suspend, so
    `run_to_end` drives a whole store function over it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def read(self, unit: Unit[T]) -> T:
        return await unit(_WriterTx(self._conn, _QUERIES, now_ms))

    async def write(self, unit: Unit[T]) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = await unit(_WriterTx(self._conn, _QUERIES, now_ms))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result


class SqliteDriver:
    shared = False
    lease_ms = LEASE_MS

    def __init__(self, path: Path, *, clock: Callable[[], int] = now_ms) -> None:
        self.path = path
        self.db = Database(path)
        self._clock = clock
        self._shared: dict[SharedUnit, SharedWrite] = {}
        self._probed_at = float("-inf")
        self._probe_failed: str | None = None

    @property
    def local_file(self) -> Path:
        return self.path

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def read(self, unit: Unit[T]) -> T:
        return await unit(_ReaderTx(self.db, _QUERIES, self._clock))

    async def write(self, unit: Unit[T]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            return run_to_end(unit(_WriterTx(conn, _QUERIES, self._clock)))

        return await self.db.write(run)

    async def statement(self, unit: Unit[T]) -> T:
        return await self.write(unit)

    async def share(self, unit: SharedUnit, item: Any, *, statement: bool = False) -> Any:
        write = self._shared.get(unit)
        if write is None:  # one per unit: the writer groups a batch's items by it

            def write(conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
                return run_to_end(unit(_WriterTx(conn, _QUERIES, self._clock), items))

            self._shared[unit] = write
        return await self.db.share(write, item)

    async def ping(self) -> None:
        """Read, and write now and then: a full disk still serves reads."""
        await self.read(lambda tx: tx.fetchval("ping"))
        if time.monotonic() - self._probed_at >= PROBE_WRITE_S:
            self._probed_at = time.monotonic()
            try:
                await self.write(lambda tx: tx.execute("probe_write"))
                self._probe_failed = None
            except StoreUnavailable as exc:
                self._probe_failed = str(exc)
        if self._probe_failed is not None:
            raise StoreUnavailable(self._probe_failed)

    async def now(self) -> int:
        return self._clock()

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        """Nothing to hear: see the module note."""

    async def leader(self, name: str) -> FileLock | None:
        return try_lock(self.path.with_name(f"{self.path.name}.{name}.lock"))


class SqliteStore(Store):
    """The store on the SQLite file at `path`."""

    def __init__(self, path: Path, *, clock: Callable[[], int] = now_ms) -> None:
        self.sqlite = SqliteDriver(path, clock=clock)
        super().__init__(self.sqlite)
