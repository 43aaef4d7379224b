"""The owner's overview (SPEC §19.4): attempts per minute by outcome, lateness, failing
destinations and counts by state, kept as running aggregates, on both stores."""

from __future__ import annotations

import httpx
import pytest

from tasks_server.retention import STATS_KEPT_MS, Retention
from tasks_server.timeutil import now_ms
from tests.api.test_queues import Headers, register, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.integration.server import free_port
from tests.target import Step, Target


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "stats-owner")


def task(url: str, **config: object) -> dict[str, object]:
    return {"httpRequest": {"url": url, "method": "POST"}, "config": config}


async def test_stats_count_attempts_lateness_failures_and_states(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/fail", Step(status=500), Step(status=500))
    refused = f"http://127.0.0.1:{free_port()}"
    ok = [await register(client, owner, task(f"{target.url}/ok")) for _ in range(3)]
    failed = await register(client, owner, task(f"{target.url}/fail", retry=1, retryInterval=1))
    gone = await register(client, owner, task(f"{refused}/x"))
    paused = await register(client, owner, task(target.url, executionDelay=60_000))
    await client.patch(f"/v1/queues/{paused['id']}/pause", headers=owner)
    for created in ok:
        await wait_state(client, owner, created["id"], "SUCCESS")
    await wait_state(client, owner, failed["id"], "ERROR")
    await wait_state(client, owner, gone["id"], "ERROR")

    response = await client.get("/v1/stats?window=1h", headers=owner)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["window"] == "1h" and stats["to"] - stats["from"] == 3_600_000
    totals: dict[str, int] = {}
    for minute in stats["attemptsPerMinute"]:
        assert minute["minute"] % 60_000 == 0 and stats["from"] <= minute["minute"] + 60_000
        for outcome, count in minute["outcomes"].items():
            totals[outcome] = totals.get(outcome, 0) + count
    assert totals == {"SUCCESS": 3, "FAILURE": 2, "TRANSPORT": 1}
    lateness = stats["lateness"]
    assert lateness["attempts"] == 6 and 0 <= lateness["p50Ms"] <= lateness["p99Ms"]
    top = stats["topFailingDestinations"]
    port = target.url.rsplit(":", 1)[1]
    assert top == [
        {"destination": f"http://127.0.0.1:{port}", "failures": 2},
        {"destination": refused, "failures": 1},
    ]
    assert stats["states"] == {"SUCCESS": 3, "ERROR": 2, "PAUSED": 1}

    # Another owner's overview is its own.
    other = await register_owner(client, "stats-other")
    empty = (await client.get("/v1/stats", headers=other)).json()
    assert empty["attemptsPerMinute"] == [] and empty["states"] == {}
    assert empty["lateness"] == {"attempts": 0, "p50Ms": 0, "p99Ms": 0}


@pytest.mark.parametrize("window", ["2h", "0", "1", "48h", "", "1h;DROP"])
async def test_a_window_that_is_not_offered_is_400(
    client: httpx.AsyncClient, owner: Headers, window: str
) -> None:
    response = await client.get(f"/v1/stats?window={window}", headers=owner)
    assert response.status_code == 400, response.text
    assert (await client.get("/v1/stats?other=1", headers=owner)).status_code == 400


async def test_stats_need_an_owner(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/stats")).status_code == 403


async def test_retention_drops_stats_older_than_the_longest_window(
    make_settings: MakeSettings, target: Target
) -> None:
    app = open_client(make_settings(retention_finished_ms=0))  # no retention loop of its own
    async with app as client:
        owner = await register_owner(client)
        done = await register(client, owner, task(f"{target.url}/ok"))
        await wait_state(client, owner, done["id"], "SUCCESS")
        store = app.services.store
        assert (await store.stats(owner["X-Tasks-Owner-Id"], since=0, top=5)).attempts
        owner_id = owner["X-Tasks-Owner-Id"]
        # Two minutes short of the kept span the minute stays; two minutes past, it goes.
        for ahead, kept in ((-120_000, True), (120_000, False)):
            at = now_ms() + STATS_KEPT_MS + ahead
            job = Retention(store, keep_ms=86_400_000, clock=lambda at=at: at)
            try:
                await job.run_once()
            finally:
                await job.stop()
            assert bool((await store.stats(owner_id, since=0, top=5)).attempts) is kept
