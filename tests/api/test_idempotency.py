"""Idempotent registration: one task per owner and Idempotency-Key, also when racing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tasks_server.store import idempotency
from tasks_server.store.base import Idempotency, InsertOutcome
from tests.api.test_queues import task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Target


async def _register(
    client: httpx.AsyncClient, owner: dict[str, str], body: dict[str, Any], key: str
) -> httpx.Response:
    headers = {**owner, "Idempotency-Key": key}
    return await client.post("/v1/queues/register", json=body, headers=headers)


async def _listed(client: httpx.AsyncClient, owner: dict[str, str]) -> list[str]:
    response = await client.get("/v1/queues", params={"limit": 100}, headers=owner)
    return [row["id"] for row in response.json()]


async def test_concurrent_repeats_store_and_run_one_task(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    body = task(f"{target.url}/once", executionDelay=0)
    responses = await asyncio.gather(*(_register(client, owner, body, "k-1") for _ in range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [201], [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    (queue_id,) = ids
    for response in responses:
        replayed = response.headers.get("idempotent-replayed")
        assert replayed == ("true" if response.status_code == 200 else None)
    await wait_state(client, owner, queue_id, "SUCCESS")
    assert await _listed(client, owner) == [queue_id]
    assert len(target.hits_for("/once")) == 1
    # A repeat after the run answers the task as it is now, and runs nothing.
    again = await _register(client, owner, body, "k-1")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == queue_id and again.json()["state"] == "SUCCESS"
    assert len(target.hits_for("/once")) == 1


async def test_concurrent_repeats_through_two_processes_store_one_task(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(cluster_mode=True)
    async with open_client(settings) as one, open_client(settings) as two:
        owner = await register_owner(one)
        body = task("http://127.0.0.1:9/x", executionDelay=600_000)
        responses = await asyncio.gather(
            *(_register(c, owner, body, "shared-key") for c in (one, two) * 4)
        )
        assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
        assert len(await _listed(one, owner)) == 1


async def test_same_key_with_another_body_is_422(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    body = task("http://127.0.0.1:9/x", executionDelay=600_000)
    assert (await _register(client, owner, body, "order-42")).status_code == 201
    other = task("http://127.0.0.1:9/y", executionDelay=600_000)
    response = await _register(client, owner, other, "order-42")
    assert response.status_code == 422
    assert "order-42" in response.json()["message"]
    # Key order and spacing do not make another body.
    reordered = {"config": body["config"], "httpRequest": body["httpRequest"]}
    assert (await _register(client, owner, reordered, "order-42")).status_code == 200
    assert len(await _listed(client, owner)) == 1


async def test_keys_belong_to_their_owner_and_replay_the_current_task(
    client: httpx.AsyncClient,
) -> None:
    alice, bobby = await register_owner(client, "alice"), await register_owner(client, "bobby")
    body = task("http://127.0.0.1:9/x", executionDelay=600_000)
    first = await _register(client, alice, body, "same")
    assert first.status_code == 201
    assert (await _register(client, bobby, body, "same")).status_code == 201
    queue_id = first.json()["id"]
    assert (await client.patch(f"/v1/queues/{queue_id}/pause", headers=alice)).status_code == 200
    replay = await _register(client, alice, body, "same")
    assert replay.status_code == 200 and replay.json()["state"] == "PAUSED"
    # Without the header, the same body is a new task.
    response = await client.post("/v1/queues/register", json=body, headers=alice)
    assert response.status_code == 201
    assert len(await _listed(client, alice)) == 2


@pytest.mark.parametrize(
    "key", ["", "a" * 256, "with space", "tab\there", "caf\u00e9".encode(), b"nul\x7f"]
)
async def test_a_malformed_key_is_400(client: httpx.AsyncClient, key: str | bytes) -> None:
    owner = await register_owner(client)
    body = task("http://127.0.0.1:9/x", executionDelay=600_000)
    headers: dict[str, str | bytes] = {**owner, "Idempotency-Key": key}
    response = await client.post("/v1/queues/register", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in response.json()["message"]
    assert await _listed(client, owner) == []


@pytest.mark.sqlite_only("reads and writes the SQLite tables directly")
async def test_a_key_expires_after_its_ttl(make_settings: MakeSettings) -> None:
    opened = open_client(make_settings())
    async with opened as client:
        owner_id = (await register_owner(client))["X-Tasks-Owner-Id"]
        store, ttl, start = opened.services.store, 1000, 1_000_000
        db = opened.services.store.sqlite.db

        async def once(queue_id: str, now: int, digest: bytes = b"body") -> Any:
            return await store.insert(
                queue_id=queue_id,
                owner_id=owner_id,
                created_at=start,
                due=start + 10**12,
                retry_limit=0,
                request=b"sealed",
                metadata=None,
                limit=100,
                lease=None,
                idempotency=Idempotency("k", digest, now, ttl),
            )

        first = await once("01JAAAAAAAAAAAAAAAAAAAAAA1", start)
        assert first[0] is InsertOutcome.INSERTED
        outcome, row = await once("01JAAAAAAAAAAAAAAAAAAAAAA2", start + ttl - 1)
        assert outcome is InsertOutcome.REPLAYED and row.id == "01JAAAAAAAAAAAAAAAAAAAAAA1"
        reused = await once("x", start + ttl - 1, b"other")
        assert reused == (InsertOutcome.KEY_REUSED, None)
        # Expired: the key is free again, even with another body, and its row is replaced.
        again = await once("01JAAAAAAAAAAAAAAAAAAAAAA3", start + ttl, b"other")
        assert again[0] is InsertOutcome.INSERTED
        rows = await db.fetchall("SELECT queue_id, expires_at FROM idempotency")
        assert [tuple(r) for r in rows] == [("01JAAAAAAAAAAAAAAAAAAAAAA3", start + 2 * ttl)]


@pytest.mark.sqlite_only("reads and writes the SQLite tables directly")
async def test_expired_keys_are_purged(make_settings: MakeSettings) -> None:
    opened = open_client(make_settings())
    async with opened as client:
        owner = await register_owner(client)
        owner_id = owner["X-Tasks-Owner-Id"]
        db = opened.services.store.sqlite.db
        count = idempotency.PURGE_BATCH * 2

        def stale(conn: Any) -> None:
            conn.executemany(
                "INSERT INTO idempotency VALUES (?, ?, x'00', 'gone', 1)",
                [(owner_id, f"old-{n}") for n in range(count)],
            )

        await db.write(stale)
        body = task("http://127.0.0.1:9/x", executionDelay=600_000)
        for n in range(2):
            assert (await _register(client, owner, body, f"new-{n}")).status_code == 201
        rows = await db.fetchall("SELECT key FROM idempotency")
        codec = opened.services.codec
        assert sorted(r[0] for r in rows) == sorted(
            codec.idempotency_key(owner_id, f"new-{n}") for n in range(2)
        )
