"""The circuit breaker through the API (SPEC §18.1): failures open a destination's circuit,
its tasks wait without attempts, one probe closes it; other destinations and owners, and
tasks that opted out, go on; reset; the gauge."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tasks_server.models.destinations import DESTINATION_ID_PATTERN
from tests.api.test_metrics import _sample
from tests.api.test_queues import register, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target

FAILURES = 3
OPEN_MS = 5_000  # long enough that what must not wait visibly does not


def task(url: str, **config: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": url, "method": "GET"}, "config": config}


async def destinations(client: httpx.AsyncClient, owner: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/v1/destinations", headers=owner)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def open_circuit(
    client: httpx.AsyncClient, owner: dict[str, str], target: Target
) -> dict[str, Any]:
    """FAILURES tasks answered 503 open the target's circuit; the destination as listed."""
    target.script("/down", *[Step(503)] * FAILURES)
    for _ in range(FAILURES):
        created = await register(client, owner, task(f"{target.url}/down"))
        await wait_state(client, owner, created["id"], "ERROR")
    (destination,) = await destinations(client, owner)
    return destination


async def test_an_open_circuit_holds_its_tasks_until_a_probe_closes_it(
    make_settings: MakeSettings, target: Target
) -> None:
    settings = make_settings(circuit_failures=FAILURES, circuit_open_ms=OPEN_MS)
    with Target() as elsewhere:
        async with open_client(settings) as client:
            owner = await register_owner(client)
            other_owner = await register_owner(client, "owner-two")
            opened = await open_circuit(client, owner, target)
            assert opened["state"] == "open", opened
            assert re.fullmatch(DESTINATION_ID_PATTERN, opened["id"]), opened["id"]
            assert (opened["scheme"], opened["host"], opened["port"]) == (
                "http",
                "127.0.0.1",
                target.port,
            )
            assert opened["consecutiveFailures"] == FAILURES
            assert opened["lastError"] == "HTTP 503"
            open_until = opened["openUntil"]
            text = (await client.get("/metrics")).text
            assert _sample(text, "tasks_circuit_open") == 1

            waiting = await register(client, owner, task(f"{target.url}/later", retry=2))
            opted_out = await register(
                client, owner, task(f"{target.url}/anyway", circuitBreaker=False)
            )
            other_host = await register(client, owner, task(f"{elsewhere.url}/fine"))
            others = await register(client, other_owner, task(f"{target.url}/theirs"))
            for queue_id, who in ((opted_out["id"], owner), (other_host["id"], owner)):
                await wait_state(client, who, queue_id, "SUCCESS")
            await wait_state(client, other_owner, others["id"], "SUCCESS")
            sent = target.hits_for("/anyway") + target.hits_for("/theirs")
            sent += elsewhere.hits_for("/fine")
            assert all(hit.at_ms < open_until for hit in sent)  # none of them waited
            assert await destinations(client, other_owner) == []

            done = await wait_state(client, owner, waiting["id"], "SUCCESS", timeout=OPEN_MS / 100)
            (probe,) = target.hits_for("/later")
            assert probe.at_ms >= open_until  # held, not attempted, until the circuit let it
            attempts = await client.get(f"/v1/queues/{waiting['id']}/attempts", headers=owner)
            assert [a["outcome"] for a in attempts.json()] == ["SUCCESS"]  # no retry spent
            assert done["statusCode"] == 200
            (closed,) = await destinations(client, owner)
            assert (closed["state"], closed["consecutiveFailures"], closed["openUntil"]) == (
                "closed",
                0,
                0,
            )
            text = (await client.get("/metrics")).text
            assert _sample(text, "tasks_circuit_open") == 0


async def test_reset_closes_a_circuit_and_frees_its_tasks(
    make_settings: MakeSettings, target: Target
) -> None:
    settings = make_settings(circuit_failures=FAILURES, circuit_open_ms=600_000)
    async with open_client(settings) as client:
        owner = await register_owner(client)
        other_owner = await register_owner(client, "owner-two")
        opened = await open_circuit(client, owner, target)
        waiting = await register(client, owner, task(f"{target.url}/later"))
        reset_url = f"/v1/destinations/{opened['id']}/reset"
        assert (await client.post(reset_url, headers=other_owner)).status_code == 404
        missing = await client.post(f"/v1/destinations/{'0' * 32}/reset", headers=owner)
        assert missing.status_code == 404
        response = await client.post(reset_url, headers=owner)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "closed"
        await wait_state(client, owner, waiting["id"], "SUCCESS")  # not 10 minutes later


async def test_destinations_listing_refuses_bad_paging(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    for query in ("limit=0", "limit=x", "offset=-1", "color=red"):
        response = await client.get(f"/v1/destinations?{query}", headers=owner)
        assert response.status_code == 400, (query, response.text)
    assert (await client.get("/v1/destinations")).status_code in (401, 403)
