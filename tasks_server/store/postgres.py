"""The PostgreSQL engine behind ``TaskStore``: any number of nodes on one database.

SQLite relied on its single writer; here every node writes at once, so what must be exact
takes row locks: a registration locks its owner row (the limit), a change or delete its task
row. Claims skip rows another node is claiming (`FOR UPDATE SKIP LOCKED`), and leases and
due times are compared on the database clock. Migrations run at start under an advisory
lock. Single runners hold a session advisory lock on a connection of their own, so a dead
node's role passes when its connection drops. Client changes are announced with NOTIFY, so
the node holding the task hears of them at once (the cluster reconcile poll stays as a
backstop); the listening session is opened again whenever it ends (a restart, a terminated
backend). An outage (no server, no connection slot left, a shutdown) raises StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tasks_server.store import postgres_schema as schema
from tasks_server.store.base import Notice, StoreError, StoreOpenError, StoreUnavailable
from tasks_server.store.driver import Fill, Row, SharedUnit, T, Unit
from tasks_server.store.engine import Store
from tasks_server.store.queries import Queries

log = logging.getLogger(__name__)

# A node killed with -9 has its tasks run elsewhere within this (SPEC §12: at most 30 s);
# the scheduler renews its leases at a sixth of it.
LEASE_MS = 20_000
POOL_MIN = 2
POOL_MAX = 10
# asyncpg waits 60 s for a server that accepts the connection and never answers.
CONNECT_TIMEOUT_S = 5.0
# Two transactions locking rows in different orders: PostgreSQL aborts one; it runs again.
_RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_TX_TRIES = 5

# The listening session ended: pauses before each try to listen again (the last repeats).
RELISTEN_S = (0.1, 0.2, 0.5, 1.0, 2.0)
# An outage rather than a fault: no server (refused, reset, timed out), a session cut
# (08xxx), no connection slot or other resource left (53xxx), a shutdown or start under way.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


@contextlib.contextmanager
def _available() -> Iterator[None]:
    """Raise the driver's errors as StoreUnavailable (an outage) or StoreError."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"PostgreSQL: {exc}") from exc


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a role name."""
    return int.from_bytes(
        hashlib.sha256(f"tasks-server:{name}".encode()).digest()[:8], "big", signed=True
    )


MIGRATION_KEY = lock_key("migrate")


class DatabaseTooNew(RuntimeError):
    """The database was migrated by a newer server than this one."""


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the migrations this database lacks, under the advisory lock; the version now."""
    await conn.execute(schema.MIGRATION_LOCK, MIGRATION_KEY)
    try:
        await conn.execute(schema.CREATE_VERSIONS)
        current = int(await conn.fetchval(schema.CURRENT_VERSION))
        if current > len(schema.MIGRATIONS):
            raise DatabaseTooNew(
                f"the database is at schema version {current}; this server knows "
                f"{len(schema.MIGRATIONS)}: upgrade the server"
            )
        for version, script in enumerate(schema.MIGRATIONS[current:], current + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(schema.RECORD_VERSION, version)
            log.info("applied migration %d", version, extra={"action": "migrated"})
        return len(schema.MIGRATIONS)
    finally:
        await conn.execute(schema.MIGRATION_UNLOCK, MIGRATION_KEY)


def _where(url: str) -> str:
    """`url` without its password and query: what a message may show of it."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    login = user.partition(":")[0]
    return urlunsplit((parts.scheme, f"{login}@{host}" if login else host, parts.path, "", ""))


# What connecting, logging in and migrating can raise: the network (refused, no answer, no
# such host), the server (auth, no such database) and the URL itself (ClientConfigurationError).
_OPEN_ERRORS = (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError, DatabaseTooNew)


@asynccontextmanager
async def _opening(url: str, connect_timeout_s: float) -> AsyncIterator[None]:
    """Turn a failure to open the database at `url` into StoreOpenError."""
    try:
        yield
    except _OPEN_ERRORS as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {connect_timeout_s:g} s (DATABASE_CONNECT_TIMEOUT_MS)"
        elif isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = str(exc) or type(exc).__name__
        raise StoreOpenError(f"cannot open the database {_where(url)}: {reason}") from exc


async def migrate_url(url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> int:
    """Bring the database at `url` to this server's schema (each start, `tasks-server
    migrate`); StoreOpenError says why it cannot be reached or migrated."""
    async with _opening(url, connect_timeout_s):
        conn = await asyncpg.connect(url, timeout=connect_timeout_s)
        try:
            return await migrate(conn)
        finally:
            await conn.close()


# A leader's connection that does not answer within this has lost the role (see `held`).
LEADER_CHECK_S = 5.0


class AdvisoryLeader:
    """A held session advisory lock; `release` drops its connection, which frees it.

    The lock lives exactly as long as its session, so a connection that dies (server restart,
    `pg_terminate_backend`, a network cut) has lost the role: another node can take it.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn: asyncpg.Connection | None = conn

    async def held(self) -> bool:
        """Whether the session, and with it the lock, is still alive. Asked of the server: an
        idle connection can be gone without this process having read anything from it."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with asyncio.timeout(LEADER_CHECK_S):
                await conn.fetchval(_QUERIES.text("ping"))
        except Exception:  # any failure (a dying session can even leave asyncpg's protocol
            # in an inconsistent state: InternalClientError) means the lock cannot be vouched for
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


_QUERIES = Queries("postgres")
# Client changes are announced to every node; the payload is "<queue id> <version>" (the
# version -1 for a deleted task).
CHANNEL = "tasks_server_changes"
# Items of one kind written per shared transaction, at most: the rest wait for the next.
_MAX_SHARED = 1_000
# Shared transactions of one kind under way at once: while one commits, the next gathers.
_SHARED_WRITERS = 2


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``DELETE 0`` (0 for one
    without, such as ``LOCK TABLE``)."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0


class _Tx:
    """Statements by name on one connection; a table of rows travels as one array per
    column (the statement `unnest`s them)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, name: str, *args: Any, fill: Fill = ()) -> list[Row]:
        rows: list[Row] = await self._conn.fetch(_QUERIES.text(name, fill), *args)
        return rows

    async def fetchrow(self, name: str, *args: Any, fill: Fill = ()) -> Row | None:
        row: Row | None = await self._conn.fetchrow(_QUERIES.text(name, fill), *args)
        return row

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self._conn.fetchval(_QUERIES.text(name), *args)

    async def execute(self, name: str, *args: Any) -> int:
        return _count(await self._conn.execute(_QUERIES.text(name), *args))

    async def fetch_rows(self, name: str, rows: Sequence[Row]) -> list[Row]:
        return await self.fetch(name, *_columns(rows))

    async def execute_rows(self, name: str, rows: Sequence[Row]) -> int:
        return await self.execute(name, *_columns(rows))

    async def now(self) -> int:
        return int(await self.fetchval("now"))

    async def notify(self, queue_id: str, version: int | None) -> None:
        await self.execute("notify", CHANNEL, f"{queue_id} {-1 if version is None else version}")


def _columns(rows: Sequence[Row]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


async def _end_transaction(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on its way back: the end of a transaction its unit left
    open (cut short). Pooled sessions never set, listen or lock anything beyond their
    transaction (the listener and the single runners have connections of their own), so
    asyncpg's default reset (RESET ALL, UNLISTEN *, advisory unlocks) would cost a round trip
    per transaction for nothing."""
    if conn.is_in_transaction():
        await conn.execute(_QUERIES.text("rollback"))


class PostgresDriver:
    shared = True
    lease_ms = LEASE_MS
    local_file = None

    def __init__(
        self, url: str, *, pool_max: int = POOL_MAX, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.url = url
        self._pool_max = pool_max
        self._connect_timeout_s = connect_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listening: asyncio.Task[None] | None = None
        self._notices: list[Notice] = []
        self._missed: list[Callable[[], None]] = []
        self._queued: dict[SharedUnit, list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._writing: dict[SharedUnit, int] = {}  # shared writers under way, by kind
        self._writers: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Migrate, then open the pool; StoreOpenError says why they cannot be."""
        await migrate_url(self.url, connect_timeout_s=self._connect_timeout_s)
        async with _opening(self.url, self._connect_timeout_s):
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=min(POOL_MIN, self._pool_max),
                max_size=self._pool_max,
                timeout=self._connect_timeout_s,
                reset=_end_transaction,
            )

    async def close(self) -> None:
        """Write what is shared and queued, stop listening, close the pool."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.close(timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                listener.terminate()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        with _available():
            async with self._pool.acquire() as conn:
                yield conn

    # --- transactions ---------------------------------------------------------------------

    async def read(self, unit: Unit[T]) -> T:
        async with self._connection() as conn:
            return await unit(_Tx(conn))

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` in one transaction, again when PostgreSQL aborted it for a deadlock."""
        return await self._run(unit, transaction=True)

    async def statement(self, unit: Unit[T]) -> T:
        return await self._run(unit, transaction=False)

    async def _run(self, unit: Unit[T], *, transaction: bool) -> T:
        for attempt in range(_TX_TRIES):
            try:
                async with self._connection() as conn:
                    if not transaction:
                        return await unit(_Tx(conn))
                    async with conn.transaction():
                        return await unit(_Tx(conn))
            except StoreError as exc:
                if not isinstance(exc.__cause__, _RETRIED) or attempt == _TX_TRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def share(self, unit: SharedUnit, item: Any, *, statement: bool = False) -> Any:
        """Queue `item`; a few writes of `unit`'s kind run at a time, each over every item
        queued before it began, so a busy node writes many attempts per round trip and an
        idle one writes each at once. A caller cancelled meanwhile cancels only its own
        wait."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(unit, []).append((item, future))
        if self._writing.get(unit, 0) < _SHARED_WRITERS:
            self._writing[unit] = self._writing.get(unit, 0) + 1
            writer = asyncio.create_task(self._write_queued(unit, statement))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def _write_queued(self, unit: SharedUnit, statement: bool) -> None:
        try:
            while queued := self._queued.get(unit):
                batch = queued[:_MAX_SHARED]
                del queued[:_MAX_SHARED]
                await self._write_shared(unit, batch, statement)
        finally:
            self._writing[unit] -= 1

    async def _write_shared(
        self, unit: SharedUnit, batch: list[tuple[Any, asyncio.Future[Any]]], statement: bool
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._run(lambda tx: unit(tx, items), transaction=not statement)
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
                for one in batch:  # a fault of one item: each alone, so only it fails
                    await self._write_shared(unit, [one], statement)
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    # --- what only PostgreSQL does --------------------------------------------------------

    async def ping(self) -> None:
        await self.read(lambda tx: tx.fetchval("ping"))

    async def now(self) -> int:
        """The database clock, epoch ms."""
        return await self.read(lambda tx: tx.now())

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        """Call `notice(queue_id, version)` for every change a client makes on any node, and
        `missed()` each time the listening session is back after it ended: the changes made
        meanwhile went unheard."""
        self._notices.append(notice)
        self._missed.append(missed)
        if self._listening is None:
            with _available():
                ended = await self._listen_once()
            self._listening = asyncio.create_task(self._relisten(ended), name="pg-listener")

    async def _listen_once(self) -> asyncio.Event:
        """Open the listening session; the event is set when it ends."""
        conn = await asyncpg.connect(self.url)
        ended = asyncio.Event()
        conn.add_termination_listener(lambda _conn: ended.set())
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn
        return ended

    async def _relisten(self, ended: asyncio.Event) -> None:
        """Listen again, with backoff, each time the session ends."""
        while True:
            await ended.wait()
            log.warning(
                "the session listening for changes ended: listening again",
                extra={"action": "listen_lost"},
            )
            for pause in itertools.chain(RELISTEN_S, itertools.repeat(RELISTEN_S[-1])):
                await asyncio.sleep(pause)
                try:
                    ended = await self._listen_once()
                    break
                except Exception as exc:  # the server is not back yet: try again later
                    log.debug("listening again failed: %s", exc)
            log.info("listening for changes again", extra={"action": "listen_back"})
            for missed in self._missed:
                missed()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        queue_id, _, version = payload.partition(" ")
        number = int(version)
        for notice in self._notices:
            notice(queue_id, None if number < 0 else number)

    async def leader(self, name: str) -> AdvisoryLeader | None:
        with _available():
            conn = await asyncpg.connect(self.url)
            try:
                held = await conn.fetchval(_QUERIES.text("try_leader"), lock_key(name))
            except BaseException:
                conn.terminate()
                raise
        if not held:
            await conn.close()
            return None
        return AdvisoryLeader(conn)


class PostgresStore(Store):
    """The store on the PostgreSQL database at `url`."""

    def __init__(
        self, url: str, *, pool_max: int = POOL_MAX, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.postgres = PostgresDriver(url, pool_max=pool_max, connect_timeout_s=connect_timeout_s)
        super().__init__(self.postgres)
