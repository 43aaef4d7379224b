"""A single runner whose lock connection dies stops leading (SPEC §12: one runner at a time).

The role is a session advisory lock: when the server ends that session (restart,
`pg_terminate_backend`), the lock is free at once, so the old holder must notice before its
next turn and step back, or two processes would run the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from tasks_server.jobs import LeaderJob
from tasks_server.retention import Retention
from tasks_server.store.postgres import PostgresStore, lock_key

DEADLINE_S = 10.0

# A bigint advisory key shows in pg_locks as its high and low 32 bits (classid, objid).
HOLDER = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid
  AND objid = $2::bigint::oid
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await first.open()
    try:
        await second.open()
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


async def terminate_holder(url: str, role: str) -> None:
    """End the session holding `role`'s lock, as an administrator (or a restart) would."""
    key = lock_key(role) & 0xFFFF_FFFF_FFFF_FFFF
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval(HOLDER, key >> 32, key & 0xFFFF_FFFF)
        assert pid is not None, f"nobody holds {role}"
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.05)


async def stepped_back(job: LeaderJob) -> bool:
    return await job.run_once() is None and job.leader is None


async def leads(job: LeaderJob) -> bool:
    return await job.run_once() is not None


async def stop(*jobs: LeaderJob) -> None:
    for job in jobs:
        await job.stop()


async def test_a_leader_whose_session_is_terminated_steps_back_and_another_takes_over(
    stores: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    first, second = (Retention(store, keep_ms=1) for store in stores)
    try:
        assert await leads(first)
        assert not await leads(second)

        await terminate_holder(postgres_url, "retention")
        await until(lambda: stepped_back(first), "the first job noticed its lost session")
        await until(lambda: leads(second), "the second job took the role")
        assert await first.run_once() is None  # the second one holds it now
        assert await leads(second)
    finally:
        await stop(first, second)


async def test_a_leader_alone_takes_its_role_again_on_a_new_session(
    stores: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    job = Retention(stores[0], keep_ms=1)
    try:
        assert await leads(job)
        await terminate_holder(postgres_url, "retention")
        await until(lambda: stepped_back(job), "the job noticed its lost session")
        await until(lambda: leads(job), "the job led again")
    finally:
        await stop(job)
