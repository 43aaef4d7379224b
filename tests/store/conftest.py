"""The store contract suite (SPEC §16.2): every `TaskStore` method, run on both engines.

Tests speak to the protocol only, through the store `build_store` makes from the settings:
no SQL, no engine's own attributes. What both engines must agree on is asserted as one
expected value, so a test that passes on both proves they agree. Times are relative to the
store's own clock (`store.now()`), which is what claims and leases compare with.

Each test starts on a freshly migrated database, made cheaply: on SQLite a copy of a file
migrated once (migrating costs an fsync per step); on PostgreSQL the tests share one
migrated database, emptied before each test (a database of its own costs half a second to
create on a busy machine, emptying it a few ms), and a test of what migrations leave in
`meta` asks for a database of its own with `fresh_database`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from ulid import ULID

from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import InsertOutcome, QueueRow, TaskStore
from tests.postgres import Databases, run_apart

T = TypeVar("T")

LIMIT = 1_000  # an owner's queue limit, where a test is not about it
FUTURE = 4_102_444_800_000  # 2100-01-01: a due time no claim of a test reaches
# A bound, not an estimate, for what a test waits on (the clock, a freed role): a check
# that holds returns at once.
DEADLINE_S = 30.0


# What emptying keeps: the migrations' record, and `meta` (start-up's own rows).
KEPT_TABLES = ("schema_migrations", "meta")
DATA_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fresh_database: on PostgreSQL, a newly migrated database of its own"
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def shared_postgres_url(postgres_databases: Databases) -> Iterator[str]:
    url = run_apart(postgres_databases.create())
    try:
        yield url
    finally:
        run_apart(postgres_databases.drop(url))


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, postgres_databases: Databases) -> Iterator[str]:
    """The shared database emptied, or with `fresh_database` a database of its own."""
    if request.node.get_closest_marker("fresh_database") is None:
        url: str = request.getfixturevalue("shared_postgres_url")
        run_apart(_empty(url))
        yield url
        return
    url = run_apart(postgres_databases.create())
    try:
        yield url
    finally:
        run_apart(postgres_databases.drop(url))


async def _empty(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tables = [row[0] for row in await conn.fetch(DATA_TABLES) if row[0] not in KEPT_TABLES]
        # DELETE, not TRUNCATE: for a few rows it is ten times faster (no new files).
        await conn.execute("".join(f"DELETE FROM {table};" for table in tables))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "tasks.db"
    run_apart(_migrate(Settings(path_sqlite=path, log=False)))
    return path


async def _migrate(settings: Settings) -> None:
    store = build_store(settings)
    await store.open()
    await store.close()


@pytest.fixture
async def store(settings: Settings, migrated_sqlite: Path) -> AsyncIterator[TaskStore]:
    """An open store on a fresh, migrated database of the engine under test."""
    if settings.database_url is None:  # SQLite: its file starts as a copy of a migrated one
        settings.path_sqlite.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_sqlite, settings.path_sqlite)
    opened = build_store(settings)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def owner(store: TaskStore) -> str:
    return await make_owner(store, "owner-one")


async def make_owner(store: TaskStore, name: str) -> str:
    owner_id = str(ULID())
    created = await store.create_owner(
        owner_id=owner_id, name=name, key_digest=b"digest-" + name.encode(), created_at=1
    )
    assert created
    return owner_id


async def add(store: TaskStore, owner_id: str, *, due: int, **fields: Any) -> QueueRow:
    """Register a task that must be inserted (or replayed: `idempotency`); its row."""
    outcome, row = await insert(store, owner_id, due=due, **fields)
    assert outcome in (InsertOutcome.INSERTED, InsertOutcome.REPLAYED), outcome
    assert row is not None
    return row


async def insert(
    store: TaskStore, owner_id: str, *, due: int, **fields: Any
) -> tuple[InsertOutcome, QueueRow | None]:
    """`store.insert` with a fresh id and the request blob `sealed-<id>`."""
    queue_id = str(ULID())
    values: dict[str, Any] = {
        "created_at": 1,
        "retry_limit": 0,
        "metadata": None,
        "limit": LIMIT,
        "lease": None,
    }
    values.update(fields)
    return await store.insert(
        queue_id=queue_id,
        owner_id=owner_id,
        due=due,
        request=f"sealed-{queue_id}".encode(),
        **values,
    )


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    """`check()`'s first truthy answer, polled: the async twin of `tests.polling.eventually`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not (answer := await check()):
        assert loop.time() < deadline, f"{what}: not within {DEADLINE_S:g} s"
        await asyncio.sleep(0.005)
    return answer


async def past(store: TaskStore, moment: int) -> None:
    """Wait until the store's clock is past `moment` (a lease ending)."""

    async def passed() -> bool:
        return await store.now() > moment

    await until(passed, f"the store's clock past {moment}")
