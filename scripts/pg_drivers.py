"""Compare asyncpg with psycopg 3 (+ psycopg_pool) on the store's two hot paths.

    .venv/bin/pip install asyncpg 'psycopg[binary]' psycopg_pool
    .venv/bin/python scripts/pg_drivers.py postgresql://user@127.0.0.1:5432/db

"register": a transaction that locks the owner row (the limit check) and inserts a task, from
32 concurrent workers. "claim": a `FOR UPDATE SKIP LOCKED` lease of 100 due rows at a time,
from 4 concurrent claimers until every row is taken. Prints rows per second and CPU seconds
of this process (the driver's own cost; the server's is the same for both).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

WORKERS = 32
PER_WORKER = 150
CLAIMERS = 4
SETUP = """
DROP TABLE IF EXISTS bench_queues; DROP TABLE IF EXISTS bench_owners;
CREATE TABLE bench_owners (id int PRIMARY KEY, active int NOT NULL DEFAULT 0);
CREATE TABLE bench_queues (id text PRIMARY KEY, owner_id int NOT NULL, due bigint NOT NULL,
  lease_owner text, request bytea NOT NULL);
INSERT INTO bench_owners SELECT g FROM generate_series(0, 31) g;
"""
LOCK_OWNER = "SELECT active < 100000 FROM bench_owners WHERE id = {p} FOR UPDATE"
INSERT = "INSERT INTO bench_queues VALUES ({p}, {p}, {p}, NULL, {p})"
COUNT = "UPDATE bench_owners SET active = active + 1 WHERE id = {p}"
CLAIM = """
UPDATE bench_queues SET lease_owner = {p} WHERE id IN (
  SELECT id FROM bench_queues WHERE lease_owner IS NULL ORDER BY due LIMIT 100
  FOR UPDATE SKIP LOCKED) RETURNING id, request
"""


def sql(template: str, style: str) -> str:
    """The same statement with asyncpg's $n or psycopg's %s placeholders."""
    if style == "%s":
        return template.replace("{p}", "%s")
    parts = template.split("{p}")
    return "".join(
        part + (f"${n + 1}" if n < len(parts) - 1 else "") for n, part in enumerate(parts)
    )


async def timed(label: str, rows: int, work: Callable[[], Awaitable[None]]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {label:<9} {rows / wall:8.0f} rows/s   client CPU {cpu:5.2f} s for {rows} rows")


async def with_asyncpg(url: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=8, max_size=16)
    await pool.execute(SETUP)
    body = os.urandom(400)

    async def register(worker: int) -> None:
        for n in range(PER_WORKER):
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetchval(sql(LOCK_OWNER, "$"), worker)
                await conn.execute(sql(INSERT, "$"), f"{worker}-{n}", worker, n, body)
                await conn.execute(sql(COUNT, "$"), worker)

    async def claimer(name: str) -> None:
        while await pool.fetch(sql(CLAIM, "$"), name):
            pass

    await timed("register", WORKERS * PER_WORKER, lambda: _all(register, range(WORKERS)))
    await timed("claim", WORKERS * PER_WORKER, lambda: _all(claimer, map(str, range(CLAIMERS))))
    await pool.close()


async def with_psycopg(url: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(url, min_size=8, max_size=16, open=False)
    await pool.open()
    async with pool.connection() as conn:
        await conn.execute(SETUP)
    body = os.urandom(400)

    async def register(worker: int) -> None:
        for n in range(PER_WORKER):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(sql(LOCK_OWNER, "%s"), (worker,))
                await conn.execute(sql(INSERT, "%s"), (f"{worker}-{n}", worker, n, body))
                await conn.execute(sql(COUNT, "%s"), (worker,))

    async def claimer(name: str) -> None:
        while True:
            async with pool.connection() as conn:
                rows = await (await conn.execute(sql(CLAIM, "%s"), (name,))).fetchall()
            if not rows:
                return

    await timed("register", WORKERS * PER_WORKER, lambda: _all(register, range(WORKERS)))
    await timed("claim", WORKERS * PER_WORKER, lambda: _all(claimer, map(str, range(CLAIMERS))))
    await pool.close()


async def _all(fn: Callable[..., Awaitable[None]], args: object) -> None:
    await asyncio.gather(*(fn(arg) for arg in args))  # type: ignore[attr-defined]


async def main(url: str) -> None:
    for name, run in (("asyncpg", with_asyncpg), ("psycopg 3", with_psycopg)):
        print(name)
        await run(url)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
