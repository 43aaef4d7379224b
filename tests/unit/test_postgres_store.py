"""What the PostgreSQL store adds to the shared contract: several nodes writing at once stay
exact, leases follow the database clock, single runners are exclusive, migrations run once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from ulid import ULID

from tasks_server import cli, startup
from tasks_server.lifecycle import Change
from tasks_server.settings import Settings, SettingsError, load_settings
from tasks_server.store import postgres_schema, queries
from tasks_server.store.base import (
    Idempotency,
    InsertOutcome,
    ListFilters,
    NewTask,
    QueueRow,
    Result,
)
from tasks_server.store.postgres import PostgresStore, migrate_url
from tests.conftest import open_client, register_owner

OWNER = str(ULID())
# The sessions listening for changes, by the query they last ran (pg_stat_activity).
LISTENERS = """SELECT pid FROM pg_stat_activity
    WHERE datname = $1 AND state = 'idle' AND query LIKE 'LISTEN%'"""
TERMINATE = "SELECT pg_terminate_backend($1)"


@pytest.fixture
async def nodes(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two nodes have."""
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await first.open()
    await second.open()
    await first.create_owner(owner_id=OWNER, name="one", key_digest=b"-", created_at=0)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def insert(store: PostgresStore, *, due: int, limit: int = 1000) -> InsertOutcome:
    outcome, _ = await store.insert(
        queue_id=str(ULID()),
        owner_id=OWNER,
        created_at=0,
        due=due,
        retry_limit=0,
        request=b"sealed",
        metadata=None,
        limit=limit,
        lease=None,
    )
    return outcome


async def test_the_limit_is_exact_with_two_nodes_registering_at_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    outcomes = await asyncio.gather(*(insert(nodes[n % 2], due=0, limit=25) for n in range(80)))
    assert outcomes.count(InsertOutcome.INSERTED) == 25
    assert outcomes.count(InsertOutcome.LIMIT_REACHED) == 55
    assert await nodes[0].active_counts() == {OWNER: (25, 25)}


async def test_one_idempotency_key_repeated_on_two_nodes_at_once_stores_one_task(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    async def register(store: PostgresStore) -> tuple[InsertOutcome, QueueRow | None]:
        return await store.insert(
            queue_id=str(ULID()),
            owner_id=OWNER,
            created_at=0,
            due=10**12,
            retry_limit=0,
            request=b"sealed",
            metadata=None,
            limit=1000,
            lease=None,
            idempotency=Idempotency("same", b"digest", 1, 60_000),
        )

    results = await asyncio.gather(*(register(nodes[n % 2]) for n in range(20)))
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count(InsertOutcome.INSERTED) == 1
    assert outcomes.count(InsertOutcome.REPLAYED) == 19
    assert len({row.id for _, row in results if row is not None}) == 1


async def test_concurrent_claims_never_lease_a_task_twice(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    for _ in range(300):
        await insert(nodes[0], due=0)
    claims = await asyncio.gather(
        *(
            nodes[n % 2].claim(holder=f"node-{n}", window_ms=0, lease_ms=60_000, limit=40)
            for n in range(10)
        )
    )
    ids = [due.id for claim in claims for due in claim]
    assert len(ids) == len(set(ids)) == 300


async def test_due_and_lease_times_are_on_the_database_clock(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    store = nodes[0]
    now = await store.now()
    await insert(store, due=now + 60_000)  # due in a minute by the database
    assert await store.claim(holder="a", window_ms=2_000, lease_ms=100, limit=10) == []
    await insert(store, due=now - 1)
    (held,) = await store.claim(holder="a", window_ms=2_000, lease_ms=100, limit=10)
    assert await store.claim(holder="b", window_ms=2_000, lease_ms=100, limit=10) == []

    async def expired() -> bool:
        return bool(await store.claim(holder="b", window_ms=2_000, lease_ms=60_000, limit=10))

    deadline = asyncio.get_running_loop().time() + 5
    while not await expired():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert await store.leased_versions("b") == {held.id: ("RUNNING", held.version)}


async def test_an_open_attempt_of_a_dead_holder_ends_interrupted_when_claimed(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = nodes
    await insert(first, due=0)
    (due,) = await first.claim(holder="dead", window_ms=0, lease_ms=1, limit=1)
    assert await first.started(holder="dead", due=due, now=1) == 1
    assert await first.claim(holder="dead", window_ms=0, lease_ms=1, limit=1) == []
    deadline = asyncio.get_running_loop().time() + 5
    while not (claimed := await second.claim(holder="live", window_ms=0, lease_ms=9, limit=1)):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert claimed[0].id == due.id
    (attempt,) = await second.attempts(due.id, limit=10, offset=0)
    assert attempt.outcome == "INTERRUPTED" and attempt.finished_at > 0


async def test_a_single_runner_role_is_held_by_one_node_until_released(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = nodes
    leader = await first.leader("retention")
    assert leader is not None
    assert await second.leader("retention") is None
    other = await second.leader("another-role")
    assert other is not None
    other.release()
    leader.release()
    deadline = asyncio.get_running_loop().time() + 5
    while (taken := await second.leader("retention")) is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    taken.release()


async def test_changes_and_deletes_are_announced_to_every_node(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = nodes
    heard: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
    await second.listen(lambda queue_id, version: heard.put_nowait((queue_id, version)), list)
    _, row = await first.insert(
        queue_id=str(ULID()),
        owner_id=OWNER,
        created_at=0,
        due=0,
        retry_limit=0,
        request=b"sealed",
        metadata=None,
        limit=10,
        lease=None,
    )
    assert row is not None
    changed = await first.change(OWNER, row.id, lambda _row: Change(state="PAUSED"))
    assert isinstance(changed, QueueRow)
    assert await asyncio.wait_for(heard.get(), 1) == (row.id, changed.version)
    assert await first.delete(OWNER, row.id)
    assert await asyncio.wait_for(heard.get(), 1) == (row.id, None)


async def test_the_listener_listens_again_after_its_session_ends(
    nodes: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    first, second = nodes
    heard: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
    missed: list[str] = []
    await second.listen(
        lambda queue_id, version: heard.put_nowait((queue_id, version)),
        lambda: missed.append("missed"),
    )
    database = urlsplit(postgres_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_url)
    try:
        (ended,) = [row[0] for row in await admin.fetch(LISTENERS, database)]
        assert await admin.fetchval(TERMINATE, ended)
        deadline = asyncio.get_running_loop().time() + 10
        while [row[0] for row in await admin.fetch(LISTENERS, database)] in ([], [ended]):
            assert asyncio.get_running_loop().time() < deadline, "not listening again"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    _, row = await first.insert(
        queue_id=str(ULID()),
        owner_id=OWNER,
        created_at=0,
        due=0,
        retry_limit=0,
        request=b"sealed",
        metadata=None,
        limit=10,
        lease=None,
    )
    assert row is not None
    changed = await first.change(OWNER, row.id, lambda _row: Change(state="PAUSED"))
    assert isinstance(changed, QueueRow)
    # Only LISTEN brings it: the store itself never polls.
    assert await asyncio.wait_for(heard.get(), 1) == (row.id, changed.version)
    assert missed == ["missed"]


async def test_migrations_apply_once_and_record_their_version(postgres_url: str) -> None:
    results = await asyncio.gather(*(migrate_url(postgres_url) for _ in range(3)))
    assert results == [len(postgres_schema.MIGRATIONS)] * 3
    conn = await asyncpg.connect(postgres_url)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [row[0] for row in versions] == list(range(1, len(postgres_schema.MIGRATIONS) + 1))


def test_database_url_must_be_postgresql_and_needs_the_cipher_key() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings(database_url="mysql://db/tasks", cipher_key="k")
    with pytest.raises(SettingsError, match="CIPHER_KEY"):
        load_settings(database_url="postgresql://db/tasks")
    assert load_settings(database_url="postgres://u@db/tasks", cipher_key="k").database_url


def test_backup_on_postgresql_points_to_its_own_tools(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:1/tasks")
    monkeypatch.setenv("CIPHER_KEY", "k")
    with pytest.raises(SystemExit) as exited:
        cli.main(["backup"])
    assert exited.value.code == 2
    assert "pg_dump" in capsys.readouterr().err


def test_migrate_subcommand(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("CIPHER_KEY", "k")
    monkeypatch.setenv("LOG", "false")
    cli.main(["migrate"])
    assert capsys.readouterr().out.strip() == f"schema version {len(postgres_schema.MIGRATIONS)}"
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(SystemExit) as exited:
        cli.main(["migrate"])
    assert exited.value.code == 2


async def test_a_schedule_fired_by_two_nodes_at_once_registers_one_task(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = nodes
    made = await asyncio.gather(
        *(
            nodes[n % 2].create_schedule(
                schedule_id=str(ULID()),
                owner_id=OWNER,
                cron="* * * * *",
                timezone="UTC",
                created_at=0,
                next_run_at=60_000,
                request=b"sealed",
                metadata=None,
                limit=3,
            )
            for n in range(8)
        )
    )
    schedules = [schedule for schedule in made if schedule is not None]
    assert len(schedules) == 3  # the per-owner limit holds across nodes
    schedule = schedules[0]

    def task() -> NewTask:
        return NewTask(str(ULID()), 0, 60_000, 0, b"sealed", None)

    fires = await asyncio.gather(
        *(
            store.fire(schedule, fire_at=60_000, next_run_at=120_000, task=task(), limit=100)
            for store in (first, second, first, second)
        )
    )
    outcomes = sorted(outcome.name for outcome, _ in fires)
    assert outcomes == ["FIRED", "STALE", "STALE", "STALE"]
    listed = await second.list_tasks(
        OWNER,
        filters=ListFilters(schedule_id=schedule.id),
        order="createdAt",
        descending=False,
        limit=10,
        offset=0,
    )
    assert len(listed) == 1
    moved = await first.get_schedule(OWNER, schedule.id)
    assert moved is not None and moved.next_run_at == 120_000
    assert await second.count_schedules() == 3


async def test_a_node_with_another_cipher_key_is_refused(postgres_url: str) -> None:
    def settings(key: str) -> Settings:
        return Settings(database_url=postgres_url, cipher_key=key, log=False)

    async with open_client(settings("the-key")) as client:
        owner = await register_owner(client)
        body = {
            "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
            "config": {"executionDelay": 10**8},
        }
        response = await client.post("/v1/queues/register", json=body, headers=owner)
        assert response.status_code == 201, response.text
    with pytest.raises(startup.KeyMismatch):
        async with open_client(settings("another-key")):
            pass
    async with open_client(settings("the-key")) as client:
        assert (await client.get("/health")).status_code == 200


async def test_starts_and_outcomes_queued_together_are_written_in_one_transaction(
    nodes: tuple[PostgresStore, PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared writes: attempts that start (or end) while a write of their kind is under
    way wait for the next one, which takes them all, so a busy node pays one statement (the
    starts) or one transaction (the outcomes) per batch rather than one per attempt."""
    store, _ = nodes
    now = await store.now()
    for _ in range(40):
        assert await insert(store, due=now - 10) is InsertOutcome.INSERTED
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=60_000, limit=40)
    driver = store.postgres
    transactions = 0
    run = driver._run

    async def counted(unit: Any, *, transaction: bool) -> Any:
        nonlocal transactions
        transactions += 1
        return await run(unit, transaction=transaction)

    monkeypatch.setattr(driver, "_run", counted)
    starts = await asyncio.gather(*(store.started(holder="a", due=d, now=now) for d in claimed))
    assert starts == [1] * 40 and transactions == 1
    result = Result(1, "SUCCESS", 200, None, None, now + 1, "SUCCESS")
    records = (store.record(holder="a", due=d, result=result, keep=5) for d in claimed)
    assert await asyncio.gather(*records) == [True] * 40 and transactions == 2


async def test_batch_writes_find_their_tasks_by_key_whatever_the_statistics(
    postgres_url: str,
) -> None:
    """Statistics taken while nothing was leased make the partial lease index look empty; a
    burst then leases thousands of rows. The statements that write a batch of leased tasks
    must find each by its key: a merge join on that index read every row their holder
    leased, per statement (PostgreSQL at 1.5 cores, a burst on 2 or 3 nodes at a third of its
    rate), and a small table's statistics made a scan of all of it look cheaper."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        owner = str(ULID())
        await store.create_owner(
            owner_id=owner, name="stale-statistics", key_digest=b"-", created_at=0
        )
        now = await store.now()
        tasks = [
            NewTask(str(ULID()), now, now - 1, retry_limit=0, request=b"sealed", metadata=None)
            for _ in range(2_000)
        ]
        assert await store.insert_many(owner, tasks, limit=10_000) is InsertOutcome.INSERTED
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute("VACUUM ANALYZE queues")  # nothing leased: the index looks empty
            claimed = await store.claim(holder="a", window_ms=0, lease_ms=60_000, limit=2_000)
            assert len(claimed) == 2_000
            texts = queries.Queries("postgres")
            batch = claimed[:100]
            ids, holders, versions = [d.id for d in batch], ["a"] * 100, [0] * 100
            nothing: list[Any] = [None] * 100
            plans = {
                "open_attempts": (ids, holders, versions, [now] * 100),
                "record_outcomes": (
                    *(ids, holders, versions, ["SUCCESS"] * 100, [200] * 100, nothing),
                    *([now] * 100, nothing, ["SUCCESS"] * 100, [1] * 100),
                ),
            }
            for name, args in plans.items():
                explained = await conn.fetch(f"EXPLAIN {texts.text(name)}", *args)
                plan = "\n".join(row[0] for row in explained)
                assert "queues_lease" not in plan and "Seq Scan" not in plan, (name, plan)
                assert "queues_pkey" in plan, (name, plan)
        finally:
            await conn.close()
    finally:
        await store.close()
