"""Workflows (SPEC §17): batches, dependencies, responses passed on, on both stores, against a
real recording target."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.test_queues import register, task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target

Headers = dict[str, str]


def step(url: str, ref: str | None = None, *deps: Any, **config: Any) -> dict[str, Any]:
    body = task(url, **config)
    if ref is not None:
        body["ref"] = ref
    if deps:
        body["dependsOn"] = [d if isinstance(d, dict) else {"ref": d} for d in deps]
    return body


async def batch(
    client: httpx.AsyncClient, owner: Headers, *tasks: dict[str, Any], status: int = 201
) -> dict[str, Any]:
    response = await client.post("/v1/queues/batch", json={"tasks": list(tasks)}, headers=owner)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def count_tasks(client: httpx.AsyncClient, owner: Headers) -> int:
    return len((await client.get("/v1/queues?limit=1000", headers=owner)).json())


async def test_a_chain_passes_responses_on(client: httpx.AsyncClient, target: Target) -> None:
    owner = await register_owner(client)
    target.script("/a", Step(delay_ms=300, body=b'{"id": 42, "items": [{"name": "x y"}]}'))
    target.script("/b", Step(status=201, body=b"made"))
    b = step(f"{target.url}/b", "b", "a")
    b["httpRequest"]["data"] = {
        "parent": "{{deps.a.json.id}}",
        "note": "n={{deps.a.json.items.0.name}}",
    }
    b["httpRequest"]["headers"] = {"X-Parent": "{{deps.a.statusCode}}"}
    made = await batch(
        client,
        owner,
        step(f"{target.url}/a", "a"),
        b,
        step(f"{target.url}/c/{{{{deps.b.statusCode}}}}/{{{{deps.b.body}}}}", "c", "b"),
    )
    a, b_out, c = made["tasks"]
    assert [t["ref"] for t in made["tasks"]] == ["a", "b", "c"]
    assert (a["state"], b_out["state"], c["state"]) == ("RUNNING", "WAITING", "WAITING")
    assert {t["batchId"] for t in made["tasks"]} == {made["batchId"]}
    (hit_c,) = await target.wait_hits("/c/201/made", 1)
    (hit_b,) = target.hits_for("/b")
    (hit_a,) = target.hits_for("/a")
    assert hit_a.at_ms <= hit_b.at_ms <= hit_c.at_ms
    assert json.loads(hit_b.body) == {"parent": 42, "note": "n=x y"}
    assert hit_b.headers["x-parent"] == "200"
    await wait_state(client, owner, c["id"], "SUCCESS")
    # The stored request keeps its placeholders.
    config = (await client.get(f"/v1/queues/{b_out['id']}/config", headers=owner)).json()
    assert config["httpRequest"]["data"]["parent"] == "{{deps.a.json.id}}"
    # The attempt records what was sent.
    (attempt,) = (await client.get(f"/v1/queues/{b_out['id']}/attempts", headers=owner)).json()
    assert attempt["sent"]["data"] == {"parent": 42, "note": "n=x y"}
    assert attempt["sent"]["headers"] == {"X-Parent": "200"}
    (plain,) = (await client.get(f"/v1/queues/{a['id']}/attempts", headers=owner)).json()
    assert plain["sent"] is None
    detail = (await client.get(f"/v1/queues/{b_out['id']}", headers=owner)).json()
    assert detail["dependencies"] == [{"id": a["id"], "name": "a", "requireSuccess": True}]
    assert detail["dependents"] == [c["id"]]
    read = (await client.get(f"/v1/batches/{made['batchId']}", headers=owner)).json()
    assert [t["id"] for t in read["tasks"]] == [a["id"], b_out["id"], c["id"]]
    assert {(e["from"], e["to"]) for e in read["edges"]} == {
        (a["id"], b_out["id"]),
        (b_out["id"], c["id"]),
    }
    listed = (await client.get(f"/v1/queues?batchId={made['batchId']}", headers=owner)).json()
    assert len(listed) == 3


async def test_a_failed_requirement_cascades_with_failure_callbacks(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    target.script("/bad", Step(status=500))
    failure = {"url": f"{target.url}/failed", "headers": {"X-Who": "child"}}
    made = await batch(
        client,
        owner,
        step(f"{target.url}/good", "good"),
        step(f"{target.url}/bad", "bad"),
        step(f"{target.url}/child", "child", "good", "bad", failureCallback=failure),
        step(f"{target.url}/grandchild", "grandchild", "child"),
        step(f"{target.url}/lenient", "lenient", {"ref": "bad", "requireSuccess": False}),
    )
    _, bad, child, grandchild, lenient = made["tasks"]
    await wait_state(client, owner, bad["id"], "ERROR")
    for waiting in (child, grandchild):
        done = await wait_state(client, owner, waiting["id"], "ERROR")
        assert done["statusCode"] == 424
    (callback,) = await target.wait_hits("/failed", 1, timeout=30)
    report = json.loads(callback.body)
    assert report["queueId"] == child["id"] and report["statusCode"] == 424
    await wait_state(client, owner, lenient["id"], "SUCCESS")
    assert not target.hits_for("/child") and not target.hits_for("/grandchild")


async def test_waiting_tasks_pause_resume_revoke_and_lose_a_deleted_parent(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    parent = await register(client, owner, task(f"{target.url}/parent", executionDelay=60_000))
    child = await register(
        client, owner, {**task(f"{target.url}/child"), "dependsOn": [{"id": parent["id"]}]}
    )
    assert child["state"] == "WAITING"
    queue = f"/v1/queues/{child['id']}"
    assert (await client.patch(f"{queue}/pause", headers=owner)).status_code == 200
    assert (await client.get(queue, headers=owner)).json()["state"] == "PAUSED"
    resumed = await client.patch(f"{queue}/resume", headers=owner)
    assert resumed.json()["state"] == "WAITING"
    executed = await client.post(f"{queue}/execute", headers=owner)
    assert executed.status_code == 422
    listed = (await client.get("/v1/queues?state=WAITING", headers=owner)).json()
    assert [t["id"] for t in listed] == [child["id"]]
    # Deleting the parent it requires ends it ERROR 424.
    assert (await client.delete(f"/v1/queues/{parent['id']}", headers=owner)).status_code == 200
    assert (await wait_state(client, owner, child["id"], "ERROR"))["statusCode"] == 424
    # Revoking one ends its dependents too; a revoked waiting task is revoked.
    first = await register(client, owner, task(f"{target.url}/p2", executionDelay=60_000))
    second = await register(
        client, owner, {**task(f"{target.url}/c2"), "dependsOn": [{"id": first["id"]}]}
    )
    third = await register(
        client, owner, {**task(f"{target.url}/c3"), "dependsOn": [{"id": first["id"]}]}
    )
    assert (
        await client.patch(f"/v1/queues/{third['id']}/revoke", headers=owner)
    ).status_code == 200
    assert (
        await client.patch(f"/v1/queues/{first['id']}/revoke", headers=owner)
    ).status_code == 200
    assert (await wait_state(client, owner, second["id"], "ERROR"))["statusCode"] == 424
    assert (await client.get(f"/v1/queues/{third['id']}", headers=owner)).json()[
        "state"
    ] == "REVOKED"


async def test_a_dependency_already_done_releases_at_once(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    parent = await register(client, owner, task(f"{target.url}/parent"))
    await wait_state(client, owner, parent["id"], "SUCCESS")
    child = await register(
        client,
        owner,
        {
            **task(f"{target.url}/child/{{{{deps.{parent['id']}.statusCode}}}}"),
            "dependsOn": [{"id": parent["id"]}],
        },
    )
    assert child["state"] == "RUNNING"
    await target.wait_hits("/child/200", 1)


async def test_a_placeholder_that_cannot_be_filled_sends_nothing(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    target.script("/a", Step(body=b'{"id": 1}'))
    target.script("/a2", Step(body=b"line\r\nX-Evil: 1"))
    missing = step(f"{target.url}/missing", "missing", "a")
    missing["httpRequest"]["data"] = {"x": "{{deps.a.json.nope}}"}
    broken = step(f"{target.url}/broken", "broken", "a2")
    broken["httpRequest"]["headers"] = {"X-From": "{{deps.a2.body}}"}
    made = await batch(
        client, owner, step(f"{target.url}/a", "a"), step(f"{target.url}/a2", "a2"), missing, broken
    )
    for queue in made["tasks"][2:]:
        done = await wait_state(client, owner, queue["id"], "ERROR")
        assert done["statusCode"] == 422
        (attempt,) = (await client.get(f"/v1/queues/{queue['id']}/attempts", headers=owner)).json()
        assert attempt["outcome"] == "UNFILLED" and "deps." in attempt["error"]
    assert not target.hits_for("/missing") and not target.hits_for("/broken")


async def test_bad_batches_are_refused_whole(
    client: httpx.AsyncClient, make_settings: MakeSettings, target: Target
) -> None:
    owner = await register_owner(client)
    other = await register_owner(client, "someone-else")
    theirs = await register(client, other, task(f"{target.url}/theirs", executionDelay=60_000))
    url = f"{target.url}/x"
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([step(url, "a", "b"), step(url, "b", "a")], "cycle"),
        ([step(url, "a", "a")], "cycle"),
        ([step(url, "a", "nobody")], "no task has ref"),
        ([step(url, "a"), step(url, "a")], "already the ref"),
        ([step(url, "a", {"id": theirs["id"]})], "not one of your tasks"),
        ([step(url, "a"), {"httpRequest": {"url": "nope", "method": "GET"}}], "tasks[1]"),
        ([step(url) for _ in range(1001)], "1 to 1000"),
        (
            [
                {
                    **step(url, "a"),
                    "httpRequest": {"url": f"{url}/{{{{deps.z.body}}}}", "method": "GET"},
                }
            ],
            "dependsOn",
        ),
        ([step("http://{{deps.a.body}}@127.0.0.1/x", "b", "a"), step(url, "a")], "not its host"),
    ]
    for tasks, message in cases:
        response = await client.post("/v1/queues/batch", json={"tasks": tasks}, headers=owner)
        assert response.status_code == 400, (message, response.text)
        assert message in response.text, (message, response.text)
    assert await count_tasks(client, owner) == 0
    single = {**task(url), "dependsOn": [{"ref": "a"}]}
    response = await client.post("/v1/queues/register", json=single, headers=owner)
    assert response.status_code == 400 and "batch" in response.text
    async with open_client(make_settings(max_tasks_in_queue=3)) as small:
        owner = await register_owner(small, "small-owner")
        refused = await small.post(
            "/v1/queues/batch", json={"tasks": [step(url) for _ in range(4)]}, headers=owner
        )
        assert refused.status_code == 422
        assert await count_tasks(small, owner) == 0


async def test_a_batch_is_idempotent(client: httpx.AsyncClient, target: Target) -> None:
    owner = await register_owner(client)
    headers = {**owner, "Idempotency-Key": "batch-1"}
    body = {
        "tasks": [
            step(f"{target.url}/a", "a", executionDelay=60_000),
            step(f"{target.url}/b", "b", "a"),
        ]
    }
    first = await client.post("/v1/queues/batch", json=body, headers=headers)
    again = await client.post("/v1/queues/batch", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    other = await client.post(
        "/v1/queues/batch", json={"tasks": body["tasks"][:1]}, headers=headers
    )
    assert other.status_code == 422
    assert await count_tasks(client, owner) == 2


async def test_an_edited_delay_of_a_waiting_task_counts_from_its_release(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    target.script("/parent", Step(delay_ms=300))
    parent = await register(client, owner, task(f"{target.url}/parent"))
    child = await register(
        client, owner, {**task(f"{target.url}/child"), "dependsOn": [{"id": parent["id"]}]}
    )
    patch = {"config": {"executionDelay": 3_600_000}}
    edited = await client.patch(f"/v1/queues/{child['id']}", json=patch, headers=owner)
    assert edited.status_code == 200, edited.text
    assert edited.json()["state"] == "WAITING"
    ended = await wait_state(client, owner, parent["id"], "SUCCESS")
    released = await wait_state(client, owner, child["id"], "RUNNING")
    assert released["estimateExecutionAt"] >= ended["estimateEndAt"] + 3_600_000
    changed = {"dependsOn": [{"id": child["id"]}]}
    refused = await client.patch(f"/v1/queues/{child['id']}", json=changed, headers=owner)
    assert refused.status_code == 400 and "dependsOn" in refused.text
