"""The destination guard at registration and through the whole server (SPEC §10.2)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Target

Headers = dict[str, str]


def task(url: str, **config: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": url, "method": "GET"}, "config": config}


@pytest.mark.parametrize(
    ("body", "path", "address"),
    [
        (task("http://127.0.0.1:9/x"), "httpRequest.url", "127.0.0.1"),
        (task("http://2130706433:9/x"), "httpRequest.url", "127.0.0.1"),
        (task("http://[::ffff:127.0.0.1]:9/x"), "httpRequest.url", "127.0.0.1"),
        (task("http://[::1]:9/x"), "httpRequest.url", "::1"),
        (
            task("http://a.test/x", proxy={"protocol": "http", "host": "127.0.0.3"}),
            "config.proxy.host",
            "127.0.0.3",
        ),
        (
            task("http://a.test/x", dohUrl="https://127.0.0.4/dns-query"),
            "config.dohUrl",
            "127.0.0.4",
        ),
        (task("http://a.test/x", dnsServer=["127.0.0.5"]), "config.dnsServer.0", "127.0.0.5"),
        (
            task("http://a.test/x", resolve=[{"host": "a.test", "port": 80, "address": ["::1"]}]),
            "config.resolve.0.address.0",
            "::1",
        ),
    ],
)
async def test_refused_literals_get_400(
    make_settings: MakeSettings, body: dict[str, Any], path: str, address: str
) -> None:
    async with open_client(make_settings(destination_deny="loopback")) as client:
        owner = await register_owner(client)
        response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    problem = {"path": path, "message": f"destination {address} refused by DESTINATION_DENY"}
    assert problem in response.json()["message"]  # (dnsServer may also lack c-ares here)


async def test_allowed_literals_and_names_register(make_settings: MakeSettings) -> None:
    async with open_client(make_settings(destination_allow="127.0.0.1/32")) as client:
        owner = await register_owner(client)
        for body in (task("http://127.0.0.1:9/x"), task("http://name.test/x")):
            response = await client.post("/v1/queues/register", json=body, headers=owner)
            assert response.status_code == 201, response.text
        refused = await client.post(
            "/v1/queues/register", json=task("http://127.0.0.2:9/x"), headers=owner
        )
    assert refused.status_code == 400
    assert "refused by DESTINATION_ALLOW" in refused.text


async def test_a_name_leading_to_a_refused_address_fails_the_task_and_sends_nothing(
    make_settings: MakeSettings, target: Target
) -> None:
    """The name passes registration; the connect-time check stops it and names the guard."""
    resolve = [{"host": "inside.test", "port": target.port, "address": ["127.0.0.1"]}]
    body = task(f"http://inside.test:{target.port}/guarded", resolve=resolve)
    async with open_client(make_settings(destination_deny="127.0.0.1/32")) as client:
        owner = await register_owner(client)
        created = await client.post("/v1/queues/register", json=body, headers=owner)
        assert created.status_code == 400  # the resolve address is a refused literal
        body["config"]["resolve"][0]["address"] = ["::ffff:127.0.0.1"]
        created = await client.post("/v1/queues/register", json=body, headers=owner)
        assert created.status_code == 400  # and so is its IPv4-mapped spelling
        del body["config"]["resolve"]
        body["config"].update(retry=3, retryInterval=1)  # a refusal is final: no retry
        body["httpRequest"]["url"] = f"http://localhost:{target.port}/guarded"
        created = await client.post("/v1/queues/register", json=body, headers=owner)
        assert created.status_code == 201, created.text
        queue_id = created.json()["id"]
        async with asyncio.timeout(10):
            while True:
                queue = (await client.get(f"/v1/queues/{queue_id}", headers=owner)).json()
                if queue["state"] != "RUNNING":
                    break
                await asyncio.sleep(0.01)  # polling the API as a user would
        attempts = (await client.get(f"/v1/queues/{queue_id}/attempts", headers=owner)).json()
    assert [(a["outcome"], a["error"][:11]) for a in attempts] == [("TRANSPORT", "destination")]
    assert queue["state"] == "ERROR" and queue["statusCode"] == 500
    message = base64.b64decode(queue["response"]).decode()
    assert "refused by DESTINATION_DENY" in message
    assert target.hits == []
