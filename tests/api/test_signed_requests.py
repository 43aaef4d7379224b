"""Signed requests (SPEC §10.5) at registration: the signature headers are the server's."""

from __future__ import annotations

import httpx

from tests.conftest import register_owner


async def test_owner_webhook_headers_are_refused_with_400(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    body = {
        "httpRequest": {
            "url": "http://127.0.0.1:9/hook",
            "method": "POST",
            "headers": {"Webhook-Signature": "v1,forged"},
        }
    }
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400
    assert "'Webhook-Signature' is not allowed: the server signs requests" in response.text
