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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tasks_server.store import flow
from tasks_server.store import postgres_sql as sql
from tasks_server.store.base import (
    AttemptRow,
    CipherCheck,
    Credentials,
    Decide,
    DeleteOutcome,
    Due,
    FireOutcome,
    Flow,
    Idempotency,
    InsertOutcome,
    KeyDigests,
    NewTask,
    Notice,
    OwnerRecord,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    Reseal,
    Result,
    ScheduleDecide,
    ScheduleRow,
    StoreOpenError,
    StoreUnavailable,
    change_columns,
    flow_columns,
    limit_message,
    task_values,
)
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

T = TypeVar("T")

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

# A change notice: the task id and its version now (None when deleted).
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
    """Raise the driver's outage errors as StoreUnavailable."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL: {exc}") from exc


class _Pool:
    """The store's way to the pool: asyncpg's, with outages raised as StoreUnavailable."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        with _available():
            async with self._pool.acquire() as conn:
                yield conn

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        with _available():
            rows: list[asyncpg.Record] = await self._pool.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        with _available():
            return await self._pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        with _available():
            return await self._pool.fetchval(query, *args)


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
    await conn.execute(sql.MIGRATION_LOCK, MIGRATION_KEY)
    try:
        await conn.execute(sql.CREATE_VERSIONS)
        current = int(await conn.fetchval(sql.CURRENT_VERSION))
        if current > len(sql.MIGRATIONS):
            raise DatabaseTooNew(
                f"the database is at schema version {current}; this server knows "
                f"{len(sql.MIGRATIONS)}: upgrade the server"
            )
        for version, script in enumerate(sql.MIGRATIONS[current:], current + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute(sql.RECORD_VERSION, version)
            log.info("applied migration %d", version, extra={"action": "migrated"})
        return len(sql.MIGRATIONS)
    finally:
        await conn.execute(sql.MIGRATION_UNLOCK, MIGRATION_KEY)


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
                await conn.fetchval(sql.PING)
        except Exception:  # any failure (a dying session can even leave asyncpg's protocol
            # in an inconsistent state: InternalClientError) means the lock cannot be vouched for
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


class PostgresStore:
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
            )

    async def close(self) -> None:
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

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        """Call `notice(queue_id, version)` for every change a client makes on any node, and
        `missed()` each time the listening session is back after it ended: the changes made
        meanwhile went unheard."""
        self._notices.append(notice)
        self._missed.append(missed)
        if self._listening is None:
            ended = await self._listen_once()
            self._listening = asyncio.create_task(self._relisten(ended), name="pg-listener")

    async def _listen_once(self) -> asyncio.Event:
        """Open the listening session; the event is set when it ends."""
        conn = await asyncpg.connect(self.url)
        ended = asyncio.Event()
        conn.add_termination_listener(lambda _conn: ended.set())
        try:
            await conn.add_listener(sql.CHANNEL, self._on_notify)
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

    @property
    def pool(self) -> _Pool:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return _Pool(self._pool)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def _write(
        self, unit: Callable[[asyncpg.Connection], Awaitable[T]], *, statement: bool = False
    ) -> T:
        """Run `unit` in one transaction, again when PostgreSQL aborted it for a deadlock.

        `statement`: the unit is one statement, its own transaction (one round trip, no
        BEGIN and COMMIT of their own)."""
        for attempt in range(_TX_TRIES):
            try:
                if statement:
                    async with self.pool.acquire() as conn:
                        return await unit(conn)
                async with self._tx() as conn:
                    return await unit(conn)
            except _RETRIED:
                if attempt == _TX_TRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _status(self, query: str, *args: Any) -> int:
        """Run one statement; the rows it touched."""
        return _count(await self._write(lambda conn: conn.execute(query, *args)))

    async def ping(self) -> None:
        await self.pool.fetchval(sql.PING)

    async def now(self) -> int:
        """The database clock, epoch ms."""
        return int(await self.pool.fetchval(sql.NOW_MS))

    async def has_data(self) -> bool:
        return bool(await self.pool.fetchval(sql.HAS_DATA))

    async def check_cipher(self, check: CipherCheck) -> None:
        async def unit(conn: asyncpg.Connection) -> None:
            await conn.execute(sql.LOCK_META_TABLE)
            stored = await conn.fetchval(sql.SELECT_META, sql.CIPHER_CHECK)
            sample = await conn.fetchrow(sql.SEALED_SAMPLE)
            value = check(
                None if stored is None else bytes(stored),
                None if sample is None else (sample[0], bytes(sample[1])),
            )
            if value is not None:
                await conn.execute(sql.INSERT_META, sql.CIPHER_CHECK, value)

        await self._write(unit)

    async def digest_plain_keys(self, digests: KeyDigests) -> int:
        steps = (
            (sql.SELECT_PLAIN_IDEMPOTENCY, sql.DIGEST_IDEMPOTENCY, digests.idempotency_key),
            (sql.SELECT_PLAIN_FLOWS, sql.DIGEST_FLOWS, digests.flow_key),
            (sql.SELECT_PLAIN_QUEUE_FLOWS, sql.DIGEST_QUEUE_FLOWS, digests.flow_key),
        )

        async def unit(conn: asyncpg.Connection) -> int:
            if await conn.fetchval(sql.TAKE_PLAIN_KEYS_MARK) is None:
                return 0
            changed = 0
            for select, update, digest in steps:
                rows = await conn.fetch(select)
                owners, keys = [row[0] for row in rows], [row[1] for row in rows]
                digested = [digest(o, k) for o, k in zip(owners, keys, strict=True)]
                changed += _count(await conn.execute(update, owners, keys, digested))
            return changed

        return await self._write(unit)

    # --- owners ---------------------------------------------------------------------------

    async def create_owner(
        self,
        *,
        owner_id: str,
        name: str,
        key_digest: bytes,
        created_at: int,
        signing_secret: bytes | None = None,
    ) -> bool:
        row = await self.pool.fetchrow(
            sql.INSERT_OWNER, owner_id, name, key_digest, signing_secret, created_at
        )
        return row is not None

    async def key_digests(self, owner_id: str) -> Credentials | None:
        row = await self.pool.fetchrow(sql.SELECT_KEY_DIGESTS, owner_id)
        return None if row is None else _credentials(row)

    async def rotate_key(
        self, owner_id: str, name: str, digest: bytes, previous_until: int
    ) -> bool:
        row = await self.pool.fetchrow(sql.ROTATE_KEY, previous_until, digest, owner_id, name)
        return row is not None

    async def signing_secrets(
        self, owner_id: str, missing: bytes | None = None
    ) -> Credentials | None:
        async def unit(conn: asyncpg.Connection) -> Credentials | None:
            if missing is not None:
                await conn.execute(sql.SET_MISSING_SIGNING, missing, owner_id)
            row = await conn.fetchrow(sql.SELECT_SIGNING, owner_id)
            return None if row is None else _credentials(row)

        return await self._write(unit)

    async def rotate_signing(
        self, owner_id: str, name: str, previous_until: int, reseal: Reseal
    ) -> bool:
        async def unit(conn: asyncpg.Connection) -> bool:
            row = await conn.fetchrow(sql.LOCK_SIGNING_BY_NAME, owner_id, name)
            if row is None:
                return False
            previous, current = reseal(None if row[0] is None else bytes(row[0]))
            await conn.execute(sql.ROTATE_SIGNING, previous, previous_until, current, owner_id)
            return True

        return await self._write(unit)

    async def get_owner(self, owner_id: str, name: str) -> OwnerRecord | None:
        row = await self.pool.fetchrow(sql.SELECT_OWNER, owner_id, name)
        return None if row is None else OwnerRecord(*row)

    async def delete_owner(self, owner_id: str, name: str) -> DeleteOutcome:
        async def unit(conn: asyncpg.Connection) -> DeleteOutcome:
            active = await conn.fetchval(sql.LOCK_OWNER_ACTIVE, owner_id, name)
            if active is None:
                return DeleteOutcome.NOT_FOUND
            if active:
                return DeleteOutcome.HAS_TASKS
            await conn.execute(sql.DELETE_OWNER, owner_id)
            return DeleteOutcome.DELETED

        return await self._write(unit)

    # --- tasks ----------------------------------------------------------------------------

    async def insert(
        self,
        *,
        queue_id: str,
        owner_id: str,
        created_at: int,
        due: int,
        retry_limit: int,
        request: bytes,
        metadata: bytes | None,
        limit: int,
        lease: tuple[str, int] | None,
        idempotency: Idempotency | None = None,
        flow: Flow | None = None,
    ) -> tuple[InsertOutcome, QueueRow | None]:
        # The lease was computed on this node's clock: keep its length, not its end.
        holder, lease_ms = (lease[0], max(0, lease[1] - now_ms())) if lease else (None, 0)

        async def insert(conn: asyncpg.Connection) -> tuple[InsertOutcome, QueueRow | None]:
            room = await conn.fetchval(sql.OWNER_HAS_ROOM, owner_id, limit)
            if room is None:
                return InsertOutcome.NO_OWNER, None
            if not room:
                return InsertOutcome.LIMIT_REACHED, None
            row = await conn.fetchrow(
                sql.INSERT_QUEUE,
                *(queue_id, owner_id, created_at, due, retry_limit, request, metadata),
                *(holder, lease_ms, *flow_columns(flow).values()),
            )
            return InsertOutcome.INSERTED, _queue_row(row)

        async def once(conn: asyncpg.Connection) -> tuple[InsertOutcome, QueueRow | None]:
            assert idempotency is not None
            key, digest, now = idempotency.key_digest, idempotency.body_digest, idempotency.now
            if await conn.fetchval(sql.LOCK_OWNER, owner_id) is None:
                return InsertOutcome.NO_OWNER, None
            await conn.execute(sql.PURGE_IDEMPOTENCY, now, sql.IDEMPOTENCY_PURGE_BATCH)
            entry = await conn.fetchrow(sql.SELECT_IDEMPOTENCY, owner_id, key, now)
            if entry is not None:
                if bytes(entry[0]) != digest:
                    return InsertOutcome.KEY_REUSED, None
                found = await conn.fetchrow(sql.SELECT_QUEUE, entry[1], owner_id)
                if found is not None:  # else its task was deleted: register anew
                    return InsertOutcome.REPLAYED, _queue_row(found)
            outcome, row = await insert(conn)
            if row is not None:
                expires = now + idempotency.ttl_ms
                await conn.execute(sql.UPSERT_IDEMPOTENCY, owner_id, key, digest, row.id, expires)
            return outcome, row

        return await self._write(insert if idempotency is None else once)

    async def insert_many(
        self, owner_id: str, tasks: Sequence[NewTask], *, limit: int
    ) -> InsertOutcome:
        async def insert(conn: asyncpg.Connection) -> InsertOutcome:
            room = await conn.fetchval(sql.OWNER_HAS_ROOM, owner_id, limit - len(tasks) + 1)
            if room is None:
                return InsertOutcome.NO_OWNER
            if not room:
                return InsertOutcome.LIMIT_REACHED
            if tasks:  # one statement: a column of values per parameter
                rows = [task_values(owner_id, task) for task in tasks]
                await conn.execute(sql.INSERT_TASKS, *map(list, zip(*rows, strict=True)))
            return InsertOutcome.INSERTED

        return await self._write(insert)

    async def get(self, owner_id: str, queue_id: str) -> QueueRow | None:
        row = await self.pool.fetchrow(sql.SELECT_QUEUE, queue_id, owner_id)
        return None if row is None else _queue_row(row)

    async def list_tasks(
        self,
        owner_id: str,
        *,
        state: str | None,
        schedule_id: str | None,
        order: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> list[QueueSummaryRow]:
        filters = {
            name: value
            for name, value in (("state", state), ("schedule_id", schedule_id))
            if value is not None
        }
        query = sql.list_for_owner(filters, order=order, descending=descending)
        rows = await self.pool.fetch(query, owner_id, *filters.values(), limit, offset)
        return [QueueSummaryRow(*row) for row in rows]

    async def ids_in_state(self, owner_id: str, state: str, limit: int) -> tuple[list[str], int]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql.SELECT_IDS_IN_STATE, owner_id, state, limit)
            total = await conn.fetchval(sql.COUNT_IN_STATE, owner_id, state)
        return [row[0] for row in rows], int(total or 0)

    async def change(
        self, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
    ) -> QueueRow | Rejected | None:
        async def unit(conn: asyncpg.Connection) -> QueueRow | Rejected | None:
            found = await conn.fetchrow(sql.LOCK_QUEUE, queue_id, owner_id)
            if found is None:
                return None
            row = _queue_row(found)
            decided = decide(row)
            if isinstance(decided, Rejected):
                return decided
            changes = change_columns(decided)
            query = sql.update_queue(changes)
            reactivates = (
                row.state not in sql.ACTIVE and changes.get("state", row.state) in sql.ACTIVE
            )
            if reactivates and limit is not None:
                room = await conn.fetchval(sql.OWNER_HAS_ROOM, owner_id, limit)
                if not room:
                    return Rejected(limit_message(limit))
            updated = _queue_row(await conn.fetchrow(query, *changes.values(), queue_id))
            await conn.execute(sql.NOTIFY, f"{queue_id} {updated.version}")
            return updated

        return await self._write(unit)

    async def delete(self, owner_id: str, queue_id: str) -> bool:
        async def unit(conn: asyncpg.Connection) -> bool:
            if await conn.fetchval(sql.DELETE_QUEUE, queue_id, owner_id) is None:
                return False
            await conn.execute(sql.NOTIFY, f"{queue_id} -1")
            return True

        return await self._write(unit)

    async def attempts(self, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]:
        rows = await self.pool.fetch(sql.SELECT_ATTEMPTS, queue_id, limit, offset)
        return [AttemptRow(*row) for row in rows]

    # --- schedules ------------------------------------------------------------------------

    async def create_schedule(
        self,
        *,
        schedule_id: str,
        owner_id: str,
        cron: str,
        timezone: str,
        created_at: int,
        next_run_at: int,
        request: bytes,
        metadata: bytes | None,
        limit: int,
    ) -> ScheduleRow | None:
        async def unit(conn: asyncpg.Connection) -> ScheduleRow | None:
            if await conn.fetchval(sql.LOCK_OWNER, owner_id) is None:
                return None
            if await conn.fetchval(sql.COUNT_OWNER_SCHEDULES, owner_id) >= limit:
                return None
            row = await conn.fetchrow(
                sql.INSERT_SCHEDULE,
                *(schedule_id, owner_id, cron, timezone, created_at, next_run_at),
                *(request, metadata),
            )
            return ScheduleRow(*row)

        return await self._write(unit)

    async def get_schedule(self, owner_id: str, schedule_id: str) -> ScheduleRow | None:
        row = await self.pool.fetchrow(sql.SELECT_SCHEDULE, schedule_id, owner_id)
        return None if row is None else ScheduleRow(*row)

    async def list_schedules(self, owner_id: str, *, limit: int, offset: int) -> list[ScheduleRow]:
        rows = await self.pool.fetch(sql.LIST_SCHEDULES, owner_id, limit, offset)
        return [ScheduleRow(*row) for row in rows]

    async def change_schedule(
        self, owner_id: str, schedule_id: str, decide: ScheduleDecide
    ) -> ScheduleRow | Rejected | None:
        async def unit(conn: asyncpg.Connection) -> ScheduleRow | Rejected | None:
            found = await conn.fetchrow(sql.LOCK_SCHEDULE, schedule_id, owner_id)
            if found is None:
                return None
            changes = decide(ScheduleRow(*found))
            if isinstance(changes, Rejected):
                return changes
            query = sql.update_schedule(changes)
            return ScheduleRow(*await conn.fetchrow(query, *changes.values(), schedule_id))

        return await self._write(unit)

    async def delete_schedule(self, owner_id: str, schedule_id: str) -> bool:
        found = await self._write(
            lambda conn: conn.fetchval(sql.DELETE_SCHEDULE, schedule_id, owner_id)
        )
        return found is not None

    async def due_schedules(self, *, before: int, limit: int) -> list[ScheduleRow]:
        rows = await self.pool.fetch(sql.DUE_SCHEDULES, before, limit)
        return [ScheduleRow(*row) for row in rows]

    async def fire(
        self,
        schedule: ScheduleRow,
        *,
        fire_at: int,
        next_run_at: int,
        task: NewTask,
        limit: int,
    ) -> tuple[FireOutcome, QueueRow | None]:
        async def unit(conn: asyncpg.Connection) -> tuple[FireOutcome, QueueRow | None]:
            current = (schedule.id, schedule.version, schedule.next_run_at)
            if await conn.fetchval(sql.LOCK_CURRENT_SCHEDULE, *current) is None:
                return FireOutcome.STALE, None
            if not await conn.fetchval(sql.OWNER_HAS_ROOM, schedule.owner_id, limit):
                await conn.execute(sql.ADVANCE_SCHEDULE, next_run_at, schedule.id)
                return FireOutcome.LIMIT_REACHED, None
            row = await conn.fetchrow(
                sql.INSERT_FIRED,
                *(task.queue_id, schedule.owner_id, task.created_at, task.due),
                *(task.retry_limit, task.request, task.metadata, schedule.id, fire_at),
                *flow_columns(task.flow).values(),
            )
            if row is None:
                await conn.execute(sql.ADVANCE_SCHEDULE, next_run_at, schedule.id)
                return FireOutcome.DUPLICATE, None
            await conn.execute(sql.FIRED, next_run_at, fire_at, task.queue_id, schedule.id)
            return FireOutcome.FIRED, _queue_row(row)

        return await self._write(unit)

    async def count_schedules(self) -> int:
        return int(await self.pool.fetchval(sql.COUNT_ACTIVE_SCHEDULES))

    # --- the scheduler --------------------------------------------------------------------

    async def claim(self, *, holder: str, window_ms: int, lease_ms: int, limit: int) -> list[Due]:
        async def unit(conn: asyncpg.Connection) -> list[Due]:
            rows = await conn.fetch(sql.CLAIM, holder, window_ms, lease_ms, limit)
            claimed = [Due(*row) for row in rows]
            now = int(await conn.fetchval(sql.NOW))
            horizon = now + window_ms
            keys = await conn.fetch(sql.FLOW_KEYS_READY, now, horizon, limit)
            # Locked in one order on every node, so two claims never wait on each other.
            for owner_id, key in sorted(tuple(key) for key in keys):
                if len(claimed) >= limit:
                    break
                next_start_at = await conn.fetchval(sql.LOCK_FLOW, owner_id, key)
                busy = await conn.fetchval(sql.FLOW_BUSY, owner_id, key, now)
                rows = await conn.fetch(
                    sql.FLOW_CANDIDATES, holder, owner_id, key, horizon, limit - len(claimed)
                )
                candidates = [flow.Candidate(Due(*row[:9]), row[9], row[10]) for row in rows]
                planned = flow.plan(
                    candidates, busy=busy, next_start_at=next_start_at, now=now, horizon=horizon
                )
                ids = [due.id for due in planned.leased]
                await conn.execute(sql.LEASE, holder, now + lease_ms, ids)
                await conn.execute(sql.FLOW_ADVANCE, planned.next_start_at, owner_id, key)
                claimed += planned.leased
            if claimed:
                await conn.execute(sql.INTERRUPT_CLAIMED, holder, [due.id for due in claimed])
            return claimed

        return await self._write(unit)

    async def started(self, *, holder: str, due: Due, now: int) -> int | None:
        async def unit(conn: asyncpg.Connection) -> int | None:
            number = await conn.fetchval(sql.START_ATTEMPT, due.id, holder, due.version, now)
            return None if number is None else int(number)

        return await self._write(unit, statement=True)

    async def record(
        self, *, holder: str, due: Due, result: Result, keep: int, callback: NewTask | None = None
    ) -> bool:
        if callback is None and result.attempt <= keep:  # the common case: one statement
            retry_at = None if result.state is not None else result.retry_at
            applied = await self._write(
                lambda conn: conn.fetchval(
                    sql.RECORD_OUTCOME,
                    *(result.state, result.status_code, result.response, result.finished_at),
                    *(retry_at, due.id, holder, due.version),
                    *(result.attempt, result.outcome, result.error, result.attempt_status_code),
                ),
                statement=True,
            )
            return bool(applied)

        async def unit(conn: asyncpg.Connection) -> bool:
            if result.state is not None:
                status = await conn.execute(
                    sql.FINISH,
                    *(result.state, result.status_code, result.response, result.finished_at),
                    *(due.id, holder, due.version),
                )
                if callback is not None and _count(status) > 0:
                    await conn.execute(
                        sql.INSERT_CALLBACK,
                        *(callback.queue_id, due.owner_id, callback.created_at, callback.due),
                        *(callback.retry_limit, callback.request, callback.metadata, due.id),
                    )
                    await conn.execute(sql.SET_CALLBACK_ID, callback.queue_id, due.id)
            else:
                status = await conn.execute(
                    sql.RETRY_LATER,
                    *(result.status_code, result.response, result.retry_at),
                    *(due.id, holder, due.version),
                )
            await conn.execute(
                sql.CLOSE_ATTEMPT,
                *(due.id, result.attempt, result.finished_at, result.attempt_status_code),
                *(result.outcome, result.error, result.response),
            )
            if result.attempt > keep:
                await conn.execute(sql.PRUNE_ATTEMPTS, due.id, result.attempt - keep)
            return _count(status) > 0

        return await self._write(unit)

    async def aborted(
        self, *, holder: str, queue_id: str, now: int, started: tuple[int, int] | None
    ) -> QueueRow | None:
        async def unit(conn: asyncpg.Connection) -> QueueRow | None:
            if started is not None:
                await conn.execute(sql.ABORT_OPEN, now, queue_id, holder, *started)
            row = await conn.fetchrow(sql.SELECT_BY_ID, queue_id)
            return None if row is None else _queue_row(row)

        return await self._write(unit)

    async def abandon(self, *, holder: str, queue_id: str, now: int) -> None:
        async def unit(conn: asyncpg.Connection) -> None:
            await conn.execute(sql.RELEASE_LEASE, queue_id, holder)
            await conn.execute(sql.INTERRUPT_OPEN_OF_TASK, now, queue_id, holder)

        await self._write(unit)

    async def reload(self, queue_id: str) -> QueueRow | None:
        row = await self.pool.fetchrow(sql.SELECT_BY_ID, queue_id)
        return None if row is None else _queue_row(row)

    async def leased_versions(self, holder: str) -> dict[str, tuple[str, int]]:
        rows = await self.pool.fetch(sql.LEASED_VERSIONS, holder)
        return {row[0]: (row[1], row[2]) for row in rows}

    async def renew(self, holder: str, ids: list[str], lease_ms: int) -> None:
        await self._status(sql.RENEW_LEASES, holder, ids, lease_ms)

    async def release(self, holder: str, queue_id: str) -> None:
        await self._status(sql.RELEASE_LEASE, queue_id, holder)

    async def release_holder(self, holder: str, *, now: int) -> None:
        async def unit(conn: asyncpg.Connection) -> None:
            await conn.execute(sql.RELEASE_LEASES_OF, holder)
            await conn.execute(sql.INTERRUPT_OPEN_OF, now, holder)

        await self._write(unit)

    async def release_all(self) -> None:
        await self._status(sql.RELEASE_ALL_LEASES)

    # --- jobs and metrics -----------------------------------------------------------------

    async def purge_finished(self, *, before: int, batch: int) -> int:
        return await self._status(sql.PURGE_FINISHED, before, batch)

    async def purge_idle_flows(self, *, before: int, batch: int) -> int:
        return await self._status(sql.PURGE_IDLE_FLOWS, before, batch)

    async def leader(self, name: str) -> AdvisoryLeader | None:
        with _available():
            conn = await asyncpg.connect(self.url)
            try:
                held = await conn.fetchval(sql.TRY_LEADER, lock_key(name))
            except BaseException:
                conn.terminate()
                raise
        if not held:
            await conn.close()
            return None
        return AdvisoryLeader(conn)

    async def count_by_state(self) -> dict[str, int]:
        return {row[0]: row[1] for row in await self.pool.fetch(sql.COUNT_BY_STATE)}

    async def count_overdue(self, *, now: int, late_by: int) -> int:
        return int(await self.pool.fetchval(sql.COUNT_OVERDUE, now - late_by))

    async def active_counts(self) -> dict[str, tuple[int, int]]:
        rows = await self.pool.fetch(sql.COUNT_ACTIVE_BY_OWNER)
        return {row[0]: (row[1], row[2]) for row in rows}


def _queue_row(row: Sequence[Any]) -> QueueRow:
    return QueueRow.from_row(tuple(row))


def _credentials(row: Sequence[Any]) -> Credentials:
    current, previous, until = row
    return Credentials(
        None if current is None else bytes(current),
        None if previous is None else bytes(previous),
        until,
    )


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])
