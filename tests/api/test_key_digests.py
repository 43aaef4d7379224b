"""`Idempotency-Key` values and flow-control keys at rest (SPEC §15.7), on both stores: only
keyed digests are written, and a database that holds them in plain text is digested at start.

What the client sent stays what it sees: the 422 names its key, `/config` shows its flow key.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import httpx

from tasks_server.settings import Settings
from tests.api.test_queues import Headers, task
from tests.conftest import MakeSettings, open_client, register_owner

IDEM = "secret-idem-value"
FLOW = "secret-flow-value"
DAY_MS = 86_400_000


def body(path: str = "/x") -> dict[str, Any]:
    return task(
        f"http://127.0.0.1:9{path}",
        executionDelay=600_000,
        flowControl={"key": FLOW, "parallelism": 1},
    )


async def _register(
    client: httpx.AsyncClient, owner: Headers, document: dict[str, Any]
) -> httpx.Response:
    headers = {**owner, "Idempotency-Key": IDEM}
    return await client.post("/v1/queues/register", json=document, headers=headers)


async def _found(settings: Settings, *secrets: str) -> list[str]:
    """Which of `secrets` the database holds: on SQLite anywhere in the bytes of its file
    and WAL, on PostgreSQL in any text or bytea value of any table."""
    stored: list[bytes] = []
    if settings.database_url is None:
        path = settings.path_sqlite
        files = [path, path.with_name(path.name + "-wal")]
        stored = [f.read_bytes() for f in files if f.exists()]
    else:
        conn = await asyncpg.connect(settings.database_url)
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            for (table,) in tables:
                for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                    stored += [v.encode() if isinstance(v, str) else v for v in row.values()]
        finally:
            await conn.close()
    return [
        secret
        for secret in secrets
        if any(isinstance(value, bytes) and secret.encode() in value for value in stored)
    ]


async def _stored_keys(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """The key columns as stored, (owner id, key) sorted, per table."""
    queries = {
        "idempotency": "SELECT owner_id, key FROM idempotency",
        "flows": "SELECT owner_id, key FROM flows",
        "queues": "SELECT owner_id, flow_key FROM queues WHERE flow_key IS NOT NULL",
    }
    if settings.database_url is None:
        conn = sqlite3.connect(settings.path_sqlite)
        try:
            found = {name: conn.execute(query).fetchall() for name, query in queries.items()}
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(settings.database_url)
        try:
            found = {name: await pg.fetch(query) for name, query in queries.items()}
        finally:
            await pg.close()
    return {name: sorted((row[0], row[1]) for row in rows) for name, rows in found.items()}


async def test_keys_are_stored_as_keyed_digests(make_settings: MakeSettings) -> None:
    settings = make_settings()
    app = open_client(settings)
    async with app as client:
        owner = await register_owner(client)
        first = await _register(client, owner, body())
        assert first.status_code == 201, first.text
        queue_id = first.json()["id"]
        # What the client sent is still what it sees.
        replay = await _register(client, owner, body())
        assert replay.status_code == 200 and replay.json()["id"] == queue_id
        refused = await _register(client, owner, body("/other"))
        assert refused.status_code == 422
        assert IDEM in refused.json()["message"]
        config = (await client.get(f"/v1/queues/{queue_id}/config", headers=owner)).json()
        assert config["config"]["flowControl"] == {"key": FLOW, "parallelism": 1}
        assert await _found(settings, IDEM, FLOW) == []
        # The digests are the owner's: another owner's equal keys are other digests.
        other = await register_owner(client, "owner-two")
        assert (await _register(client, other, body())).status_code == 201
        stored = await _stored_keys(settings)
        for table in ("idempotency", "queues"):
            (mine, theirs) = stored[table]
            assert mine[1] != theirs[1]
        assert await _found(settings, IDEM, FLOW) == []
