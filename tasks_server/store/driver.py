"""What the store's transactions run on: a `Tx`, given by each engine's driver.

The transactions (``owners``, ``tasks``, ``schedules``, ``leases``, ``meta``) are written
once, as coroutines of a `Tx`, and name their statements: each engine keeps its text under
the same name in its SQL file (``store/sql/``). A driver runs a unit in one transaction:

- SQLite runs it on its writer thread, inside the batch its group commit is writing. Its
  `Tx` never suspends (every statement is a direct call), so the driver steps the coroutine
  to its end there, without an event loop (`run_to_end`).
- PostgreSQL awaits it on a pooled connection, again when the server aborted it for a
  deadlock.

`share` runs the writes every attempt makes (its start, its outcome) over all the items
queued meanwhile, in one transaction, a few statements for many attempts: the writer's own
batch on SQLite, the driver's batch on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tasks_server.store.base import Leader, Notice

T = TypeVar("T")
Row = Sequence[Any]
# A statement's fill-ins (column names, an order): see `queries.Queries.text`.
Fill = tuple[tuple[str, str], ...]


class Tx(Protocol):
    """One transaction's statements, by name. A `list` argument is an array (PostgreSQL's
    arrays, SQLite's JSON arrays); `rows` arguments are bound as one table (`VALUES` rows on
    SQLite, one array per column on PostgreSQL)."""

    async def fetch(self, name: str, *args: Any, fill: Fill = ()) -> list[Row]: ...

    async def fetchrow(self, name: str, *args: Any, fill: Fill = ()) -> Row | None: ...

    async def fetchval(self, name: str, *args: Any) -> Any: ...

    async def execute(self, name: str, *args: Any) -> int:
        """Run the statement; the rows it touched."""

    async def fetch_rows(self, name: str, rows: Sequence[Row]) -> list[Row]:
        """Run the statement over `rows` (its table), returning what it returns."""

    async def execute_rows(self, name: str, rows: Sequence[Row]) -> int: ...

    async def now(self) -> int:
        """The store's clock, epoch ms."""

    async def notify(self, queue_id: str, version: int | None) -> None:
        """Tell the other processes that a client changed (or deleted: None) a task, once
        this transaction commits."""


Unit = Callable[[Tx], Coroutine[Any, Any, T]]
# One write for many callers' items: one result per item, in order.
SharedUnit = Callable[[Tx, list[Any]], Coroutine[Any, Any, list[Any]]]


class Transactions(Protocol):
    async def read(self, unit: Unit[T]) -> T:
        """Run `unit`'s reads outside the writer (a snapshot per statement)."""

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` in one transaction; its result once durably committed."""


class Driver(Transactions, Protocol):
    """An engine: its connections, its transactions and what only it can do."""

    shared: bool
    lease_ms: int

    @property
    def local_file(self) -> Path | None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def statement(self, unit: Unit[T]) -> T:
        """Run `unit`, whose statements each stand alone, every one its own transaction: on
        PostgreSQL one round trip each, its locks released as it ends."""

    async def share(self, unit: SharedUnit, item: Any, *, statement: bool = False) -> Any:
        """Run `unit` over `item` and the other items of its kind queued meanwhile; a
        `statement` unit is one statement, its own transaction (as `statement`)."""

    async def ping(self) -> None: ...

    async def now(self) -> int: ...

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None: ...

    async def leader(self, name: str) -> Leader | None: ...


def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (a unit over SQLite's `Tx`)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a write unit awaited something other than its transaction")
