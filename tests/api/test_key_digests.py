"""`Idempotency-Key` values and flow-control keys at rest (SPEC §15.7), on both stores: only
keyed digests are written, and a database that holds them in plain text is digested at start.

What the client sent stays what it sees: the 422 names its key, `/config` shows its flow key.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from ulid import ULID

from tasks_server.api import idempotency
from tasks_server.api.auth import digest
from tasks_server.codec import TaskCodec
from tasks_server.crypto import Cipher
from tasks_server.models.queues import QueueRegistration
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.timeutil import now_ms
from tests.api.test_queues import Headers, task
from tests.conftest import MakeSettings, open_client, register_owner
from tests.old_schema import write_old_database

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


# --- a database written before the digests -------------------------------------------------


@dataclass(frozen=True)
class OldOwner:
    """An owner of the old database, with one waiting task under IDEM and FLOW."""

    name: str
    id: str
    key: str
    queue_id: str

    @property
    def headers(self) -> Headers:
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.id}


def _old_owner(name: str) -> OldOwner:
    return OldOwner(name, str(ULID()), name.replace("-", "").ljust(64, "k"), str(ULID()))


# The rows a server before the digests wrote, in its own statements' words.
_OLD_WRITES = (
    "INSERT INTO owners (id, name, key_digest, created_at) VALUES ($1, $2, $3, $4)",
    """INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at,
                           request, flow_key, flow_parallelism)
       VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, 1)""",
    "INSERT INTO flows (owner_id, key, next_start_at) VALUES ($1, $2, $3)",
    """INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at)
       VALUES ($1, $2, $3, $4, $5)""",
)


def _old_rows(settings: Settings, owner: OldOwner, now: int) -> list[tuple[Any, ...]]:
    reg = QueueRegistration.model_validate(body(), context={"check_future": False})
    assert settings.cipher_key is not None
    sealed = TaskCodec(Cipher.from_secret(settings.cipher_key)).seal_request(reg, owner.queue_id)
    return [
        (owner.id, owner.name, digest(owner.key), now),
        (owner.queue_id, owner.id, now, now + DAY_MS, sealed, FLOW),
        (owner.id, FLOW, now),
        (owner.id, IDEM, idempotency.body_digest(body()), owner.queue_id, now + DAY_MS),
    ]


async def _write_old_database(settings: Settings, owners: list[OldOwner]) -> None:
    """The schema of the last release before the digests, holding `owners`' plain keys."""
    now = now_ms()
    writes = [
        write
        for owner in owners
        for write in zip(_OLD_WRITES, _old_rows(settings, owner, now), strict=True)
    ]
    await write_old_database(settings, sqlite=4, postgres=3, writes=writes)


async def test_plain_keys_of_an_older_database_are_digested_at_start(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    owners = [_old_owner("old-owner"), _old_owner("old-other")]
    await _write_old_database(settings, owners)
    assert await _found(settings, IDEM, FLOW) == [IDEM, FLOW]
    app = open_client(settings)
    async with app as client:
        digested = await _stored_keys(settings)
        cipher = Cipher.from_secret(settings.cipher_key or "")
        ids = sorted(owner.id for owner in owners)
        assert digested == {
            "idempotency": sorted((o, cipher.idempotency_key(o, IDEM)) for o in ids),
            "flows": sorted((o, cipher.flow_key(o, FLOW)) for o in ids),
            "queues": sorted((o, cipher.flow_key(o, FLOW)) for o in ids),
        }
        for owner in owners:
            # Each owner's key still answers with the task it made, and only with that body.
            replay = await _register(client, owner.headers, body())
            assert replay.status_code == 200, replay.text
            assert replay.json()["id"] == owner.queue_id
            assert (await _register(client, owner.headers, body("/other"))).status_code == 422
        # A new task with the key shares the old tasks' key.
        fresh = await client.post("/v1/queues/register", json=body(), headers=owners[0].headers)
        assert fresh.status_code == 201
        shared = (owners[0].id, cipher.flow_key(owners[0].id, FLOW))
        assert (await _stored_keys(settings))["queues"].count(shared) == 2
    # Digested once: a restart leaves the digests as they are.
    async with open_client(settings) as client:
        replay = await _register(client, owners[0].headers, body())
        assert replay.status_code == 200 and replay.json()["id"] == owners[0].queue_id
    stored = await _stored_keys(settings)
    assert stored["flows"] == digested["flows"]
    assert stored["idempotency"] == digested["idempotency"]
    assert await _found(settings, IDEM, FLOW) == []


async def test_stores_starting_together_digest_once(make_settings: MakeSettings) -> None:
    settings = make_settings()
    owner = _old_owner("old-owner")
    await _write_old_database(settings, [owner])
    cipher = Cipher.from_secret(settings.cipher_key or "")
    stores = [build_store(settings) for _ in range(2)]
    try:
        for store in stores:
            await store.open()
        changed = await asyncio.gather(*(store.digest_plain_keys(cipher) for store in stores))
    finally:
        for store in stores:
            await store.close()
    assert sorted(changed) == [0, 3]  # its idempotency, flows and queues rows, by one store
    assert await _stored_keys(settings) == {
        "idempotency": [(owner.id, cipher.idempotency_key(owner.id, IDEM))],
        "flows": [(owner.id, cipher.flow_key(owner.id, FLOW))],
        "queues": [(owner.id, cipher.flow_key(owner.id, FLOW))],
    }
