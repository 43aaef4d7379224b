"""Where the original's answers are kept: list state in any case, retryInterval ≥ 1."""

from __future__ import annotations

import httpx

from tests.api.test_queues import register, task
from tests.conftest import register_owner


async def test_list_state_is_case_insensitive(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    body = task("http://127.0.0.1:9/x", executionDelay=60_000)
    queue_id = (await register(client, owner, body))["id"]
    await register(client, owner, body)
    assert (await client.patch(f"/v1/queues/{queue_id}/pause", headers=owner)).status_code == 200
    for state in ("paused", "Paused", "PAUSED"):
        response = await client.get("/v1/queues", params={"state": state}, headers=owner)
        assert response.status_code == 200, response.text
        assert [row["id"] for row in response.json()] == [queue_id]
    response = await client.get("/v1/queues", params={"state": "sleeping"}, headers=owner)
    assert response.status_code == 400


async def test_retry_interval_zero_is_400(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    body = task("http://127.0.0.1:9/x", retry=3, retryInterval=0)
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400
    assert response.json()["message"][0]["path"] == "config.retryInterval"
