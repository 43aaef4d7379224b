"""`config.flowControl` through the API (SPEC §11.3), on both stores: validation, limits
observed at a real target, edits and schedules carrying a key, and the wait metric."""

from __future__ import annotations

import logging

import httpx
import pytest

from tasks_server.retention import FLOW_IDLE_MS, Retention
from tasks_server.timeutil import now_ms
from tests.api.test_queues import Headers, register, task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "flow-owner")


async def test_invalid_flow_control_is_refused_naming_the_field(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    body = task("http://127.0.0.1:9/x", flowControl={"key": "k"})
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == [
        {
            "path": "config.flowControl",
            "message": "Value error, flowControl needs parallelism, ratePerSecond or both",
        }
    ]


async def test_parallelism_and_the_wait_it_costs(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/one", *[Step(delay_ms=100)] * 5)
    flow = {"key": "one-at-a-time", "parallelism": 1}
    ids = [(await register(client, owner, task(f"{target.url}/one", flowControl=flow)))["id"]]
    ids += [
        (await register(client, owner, task(f"{target.url}/one", flowControl=flow)))["id"]
        for _ in range(4)
    ]
    for queue_id in ids:
        await wait_state(client, owner, queue_id, "SUCCESS")
    assert target.peak["/one"] == 1
    # Due order: they reach the target in the order they were registered.
    assert [hit.queue_id for hit in target.hits_for("/one")] == ids
    config = (await client.get(f"/v1/queues/{ids[0]}/config", headers=owner)).json()
    assert config["config"]["flowControl"] == flow
    metrics = (await client.get("/metrics")).text
    assert "tasks_flow_control_wait_seconds_count 5.0" in metrics
    last = (await client.get(f"/v1/queues/{ids[-1]}/attempts", headers=owner)).json()[0]
    assert last["startedAt"] - last["dueAt"] >= 300  # it waited for four 100 ms attempts


async def test_keys_are_per_owner(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    other = await register_owner(client, "flow-other")
    target.script("/same-key", Step(delay_ms=5_000), Step(delay_ms=5_000))
    flow = {"key": "shared-name", "parallelism": 1}
    mine = await register(client, owner, task(f"{target.url}/same-key", flowControl=flow))
    theirs = await register(client, other, task(f"{target.url}/same-key", flowControl=flow))
    await target.wait_hits("/same-key", 2)  # both in flight at once: not one key
    assert {hit.queue_id for hit in target.hits_for("/same-key")} == {mine["id"], theirs["id"]}


async def test_an_edit_sets_the_key(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/held", Step(delay_ms=1_000))
    flow = {"key": "edited", "parallelism": 1}
    await register(client, owner, task(f"{target.url}/held", flowControl=flow))
    await target.wait_hits("/held", 1)
    later = await register(client, owner, task(f"{target.url}/later", executionDelay=600_000))
    patch = {"config": {"executionDelay": 1, "flowControl": flow}}
    response = await client.patch(f"/v1/queues/{later['id']}", json=patch, headers=owner)
    assert response.status_code == 200, response.text
    await wait_state(client, owner, later["id"], "SUCCESS")
    (held,) = target.hits_for("/held")
    (waited,) = target.hits_for("/later")
    assert waited.at_ms - held.at_ms >= 900  # it waited for the held one to answer


async def test_a_schedules_tasks_carry_its_key(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    body = {
        "cron": "* * * * * *",
        "httpRequest": {"url": f"{target.url}/fired", "method": "GET"},
        "config": {"flowControl": {"key": "fired", "ratePerSecond": 0.5}},
    }
    response = await client.post("/v1/schedules", json=body, headers=owner)
    assert response.status_code == 201, response.text
    schedule = response.json()
    await target.wait_hits("/fired", 2, timeout=15)
    await client.patch(f"/v1/schedules/{schedule['id']}/pause", headers=owner)
    first, second = target.hits_for("/fired")[:2]
    # Fired every second, started every two: the rate of the key holds.
    assert second.at_ms - first.at_ms >= 1_900


async def test_an_idle_keys_row_is_purged_and_made_again_when_the_key_is_used(
    make_settings: MakeSettings, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    app = open_client(make_settings(retention_finished_ms=0))  # no purge loop of its own
    async with app as client:
        owner = await register_owner(client, "flow-purge")
        store = app.services.store
        flow = {"key": "paced", "ratePerSecond": 2}
        before_start = now_ms()
        first = await register(client, owner, task(f"{target.url}/paced", flowControl=flow))
        await wait_state(client, owner, first["id"], "SUCCESS")
        # The row keeps the next start (500 ms after the first): kept until that is past.
        assert await store.purge_idle_flows(before=before_start, batch=10) == 0
        assert await store.purge_idle_flows(before=now_ms() + 1_000, batch=10) == 1
        # Used again, the key has its row made anew, and its rate holds.
        ids = [
            (await register(client, owner, task(f"{target.url}/paced", flowControl=flow)))["id"]
            for _ in range(2)
        ]
        for queue_id in ids:
            await wait_state(client, owner, queue_id, "SUCCESS")
        second, third = target.hits_for("/paced")[1:]
        assert third.at_ms - second.at_ms >= 450
        # Retention purges the key once idle for FLOW_IDLE_MS, not before.
        caplog.set_level(logging.INFO, logger="tasks_server.retention")
        for ahead_ms in (0, FLOW_IDLE_MS + 1_000):
            retention = Retention(store, keep_ms=86_400_000, clock=lambda a=ahead_ms: now_ms() + a)
            try:
                assert await retention.run_once() == 0  # no finished task is a day old
            finally:
                await retention.stop()
            purged = [r.message for r in caplog.records if r.message.endswith("idle flow keys")]
            assert purged == ([] if ahead_ms == 0 else ["purged 1 idle flow keys"])
        assert await store.purge_idle_flows(before=now_ms() + 10_000, batch=10) == 0
