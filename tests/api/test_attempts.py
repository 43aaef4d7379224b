"""The delivery record (SPEC §9): attempts listing, replay, bulk actions, the kept owner
counter and retention, against a real recording target."""

from __future__ import annotations

import base64
import random
import socket
from typing import Any

import httpx
import pytest

from tasks_server.retention import Retention
from tasks_server.timeutil import now_ms
from tests.api.test_queues import Headers, register, task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "attempt-owner")


async def attempts_of(
    client: httpx.AsyncClient, owner: Headers, queue_id: str, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/queues/{queue_id}/attempts", headers=owner, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_attempts_of_a_500_503_200_task(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/flaky", Step(500, body=b"e1"), Step(503, body=b"e2"), Step(200, body=b"ok"))
    created = await register(client, owner, task(f"{target.url}/flaky", retry=2, retryInterval=1))
    await wait_state(client, owner, created["id"], "SUCCESS")
    rows = await attempts_of(client, owner, created["id"])
    assert [(r["attempt"], r["outcome"], r["statusCode"]) for r in rows] == [
        (1, "FAILURE", 500),
        (2, "FAILURE", 503),
        (3, "SUCCESS", 200),
    ]
    assert [base64.b64decode(r["response"]) for r in rows] == [b"e1", b"e2", b"ok"]
    for row in rows:
        assert row["error"] is None
        assert row["startedAt"] >= row["dueAt"] and row["finishedAt"] >= row["startedAt"]
        assert row["latenessMs"] == row["startedAt"] - row["dueAt"]
        assert row["durationMs"] == row["finishedAt"] - row["startedAt"]
    assert [r["attempt"] for r in await attempts_of(client, owner, created["id"], offset="1")] == [
        2,
        3,
    ]
    assert len(await attempts_of(client, owner, created["id"], limit="1")) == 1
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"offset": str(2**64)}):
        response = await client.get(
            f"/v1/queues/{created['id']}/attempts", headers=owner, params=bad
        )
        assert response.status_code == 400, bad


async def test_a_transport_failure_names_libcurls_error(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: the connection is refused
        created = await register(client, owner, task(f"http://127.0.0.1:{port}/x"))
        await wait_state(client, owner, created["id"], "ERROR")
    (row,) = await attempts_of(client, owner, created["id"])
    assert row["outcome"] == "TRANSPORT" and row["statusCode"] == 500
    assert "connect" in row["error"].lower()


async def test_attempts_are_the_owners_own(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(client, owner, task(f"{target.url}/mine"))
    other = await register_owner(client, "someone-else")
    response = await client.get(f"/v1/queues/{created['id']}/attempts", headers=other)
    assert (response.status_code, response.json()) == (404, {})


async def test_replay_of_error_and_success_tasks(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/bad", Step(500), Step(500), Step(200, body=b"fixed"))
    failed = await register(client, owner, task(f"{target.url}/bad", retry=1, retryInterval=1))
    await wait_state(client, owner, failed["id"], "ERROR")
    # Due in an hour, so it is surely still RUNNING when replayed again; then run it now.
    hour = {"executionDelay": 3_600_000}
    replayed = await client.post(f"/v1/queues/{failed['id']}/replay", json=hour, headers=owner)
    assert replayed.status_code == 200 and replayed.json()["state"] == "RUNNING"
    again = await client.post(f"/v1/queues/{failed['id']}/replay", headers=owner)
    assert again.status_code == 422  # RUNNING
    executed = await client.post(f"/v1/queues/{failed['id']}/execute", headers=owner)
    assert executed.status_code == 200
    done = await wait_state(client, owner, failed["id"], "SUCCESS")
    assert base64.b64decode(done["response"]) == b"fixed"
    rows = await attempts_of(client, owner, failed["id"])
    assert [(r["attempt"], r["outcome"]) for r in rows] == [
        (1, "FAILURE"),
        (2, "FAILURE"),
        (3, "SUCCESS"),
    ]

    succeeded = await register(client, owner, task(f"{target.url}/good"))
    await wait_state(client, owner, succeeded["id"], "SUCCESS")
    before = now_ms()
    response = await client.post(
        f"/v1/queues/{succeeded['id']}/replay", json={"executionDelay": 300}, headers=owner
    )
    assert response.status_code == 200
    assert response.json()["estimateExecutionAt"] >= before + 300
    await wait_state(client, owner, succeeded["id"], "SUCCESS")
    assert len(target.hits_for("/good")) == 2
    bad_body = await client.post(
        f"/v1/queues/{succeeded['id']}/replay", json={"executionDelay": -1}, headers=owner
    )
    assert bad_body.status_code == 400


async def test_replay_counts_toward_the_limit(make_settings: MakeSettings, target: Target) -> None:
    async with open_client(make_settings(max_tasks_in_queue=1)) as client:
        owner = await register_owner(client)
        first = await register(client, owner, task(f"{target.url}/one"))
        await wait_state(client, owner, first["id"], "SUCCESS")
        await register(client, owner, task(f"{target.url}/two", executionDelay=60_000))
        response = await client.post(f"/v1/queues/{first['id']}/replay", headers=owner)
        assert response.status_code == 422 and "limit" in response.json()["message"]


async def test_bulk_revoke_keeps_owners_apart(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    mine = [
        (await register(client, owner, task(f"{target.url}/b{n}", executionDelay=60_000)))["id"]
        for n in range(3)
    ]
    other = await register_owner(client, "bulk-other")
    theirs = (await register(client, other, task(f"{target.url}/t", executionDelay=60_000)))["id"]
    await client.patch(f"/v1/queues/{mine[2]}/revoke", headers=owner)
    body = {"action": "revoke", "ids": [*mine, theirs]}
    response = await client.post("/v1/queues/bulk", json=body, headers=owner)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["done"] == mine[:2] and out["notFound"] == [theirs] and out["remaining"] == 0
    assert [r["id"] for r in out["refused"]] == [mine[2]]
    assert (await client.get(f"/v1/queues/{theirs}", headers=other)).json()["state"] == "RUNNING"

    by_state = await client.post(
        "/v1/queues/bulk", json={"action": "delete", "state": "REVOKED"}, headers=owner
    )
    assert sorted(by_state.json()["done"]) == sorted(mine) and by_state.json()["remaining"] == 0
    for bad in (
        {"action": "revoke"},
        {"action": "revoke", "ids": [theirs], "state": "RUNNING"},
        {"action": "explode", "ids": [theirs]},
        {"action": "revoke", "ids": ["x"] * 1001},
        {"action": "revoke", "ids": []},
    ):
        assert (await client.post("/v1/queues/bulk", json=bad, headers=owner)).status_code == 400


async def test_bulk_by_state_reports_what_remains(
    make_settings: MakeSettings, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks_server.api import queues as queue_routes

    monkeypatch.setattr(queue_routes, "MAX_BULK", 2)
    async with open_client(make_settings()) as client:
        owner = await register_owner(client)
        for n in range(5):
            await register(client, owner, task(f"{target.url}/p{n}", executionDelay=60_000))
        body = {"action": "pause", "state": "RUNNING"}
        out = (await client.post("/v1/queues/bulk", json=body, headers=owner)).json()
        assert len(out["done"]) == 2 and out["remaining"] == 3


async def test_owner_counter_matches_a_recount_after_a_random_mix(
    make_settings: MakeSettings, target: Target
) -> None:
    """The O(1) limit check reads a counter kept by the store; it never drifts."""
    rng = random.Random(12)
    app = open_client(make_settings())
    async with app as client:
        owners = [await register_owner(client, f"mixer-{n}") for n in range(3)]
        tasks: list[tuple[Headers, str]] = []
        for _ in range(150):
            owner = rng.choice(owners)
            action = rng.choice(["register", "register", "pause", "resume", "revoke", "delete"])
            if action == "register" or not tasks:
                delay = rng.choice([1, 60_000])
                body = task(f"{target.url}/mix", executionDelay=delay)
                tasks.append((owner, (await register(client, owner, body))["id"]))
                continue
            headers, queue_id = rng.choice(tasks)
            if action == "delete":
                await client.delete(f"/v1/queues/{queue_id}", headers=headers)
            else:
                await client.patch(f"/v1/queues/{queue_id}/{action}", headers=headers)
            if rng.random() < 0.2:
                await client.post(f"/v1/queues/{queue_id}/replay", headers=headers)
        for _owner, queue_id in tasks:  # completions move the counter too
            row = (await client.get(f"/v1/queues/{queue_id}", headers=_owner)).json()
            if row and row["state"] == "RUNNING" and row["estimateExecutionAt"] < now_ms() + 1000:
                await wait_state(client, _owner, queue_id, "SUCCESS")
        counts = await app.services.store.active_counts()
    assert len(counts) == 3
    assert all(kept == recount for kept, recount in counts.values()), counts


async def test_retention_purges_finished_tasks_once(
    make_settings: MakeSettings, target: Target
) -> None:
    settings = make_settings(cluster_mode=True, retention_finished_ms=0)  # no loops of their own
    app = open_client(settings)
    async with app as a, open_client(settings) as b:
        owner = await register_owner(a)
        done = await register(a, owner, task(f"{target.url}/old"))
        await wait_state(a, owner, done["id"], "SUCCESS")
        waiting = await register(a, owner, task(f"{target.url}/new", executionDelay=60_000))
        store = app.services.store
        first = Retention(store, keep_ms=1, clock=lambda: now_ms() + 10)
        second = Retention(store, keep_ms=1, clock=lambda: now_ms() + 10)
        try:
            assert await first.run_once() == 1
            assert await second.run_once() is None  # one process purges
        finally:
            await first.stop()
            await second.stop()
        assert (await a.get(f"/v1/queues/{done['id']}", headers=owner)).status_code == 404
        assert (await b.get(f"/v1/queues/{waiting['id']}", headers=owner)).status_code == 200
        gone = await a.get(f"/v1/queues/{done['id']}/attempts", headers=owner)
        assert gone.status_code == 404


@pytest.mark.parametrize(("status", "hits"), [(200, 1), (203, 1), (500, 3)])
async def test_an_answer_too_large_is_retried_only_when_it_was_not_delivered(
    make_settings: MakeSettings, target: Target, status: int, hits: int
) -> None:
    """A 2xx/3xx answer over MAX_SIZE_DATA_RESPONSE means the target has the request: the
    task ends 422 TOO_LARGE at once, its attempt showing the real status (SPEC §15.3)."""
    target.script("/big", *[Step(status, body=b"x" * 5000)] * 3)
    async with open_client(make_settings(max_size_data_response=1000)) as client:
        owner = await register_owner(client)
        body = task(f"{target.url}/big", retry=2, retryInterval=1)
        created = await register(client, owner, body)
        done = await wait_state(client, owner, created["id"], "ERROR")
        rows = await attempts_of(client, owner, created["id"])
    assert done["statusCode"] == 422
    assert [(r["outcome"], r["statusCode"]) for r in rows] == [("TOO_LARGE", status)] * hits
    assert len(target.hits) == hits
