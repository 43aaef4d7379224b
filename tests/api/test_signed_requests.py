"""Signed requests (SPEC §10.5) at registration: the signature headers are the server's."""

from __future__ import annotations

import base64

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.api.test_queues import register, task
from tests.conftest import register_owner
from tests.target import Target


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


async def test_attempts_are_signed_with_the_owners_secret_and_rotation_keeps_both(
    client: httpx.AsyncClient,
) -> None:
    """End to end: the secret returned at registration verifies what the target received,
    with the `standardwebhooks` library; after a rotation both secrets verify."""
    registered = (await client.post("/v1/owners/register", json={"name": "signer"})).json()
    owner = {"Authorization": f"Bearer {registered['key']}", "X-Tasks-Owner-Id": registered["id"]}
    with Target() as target:
        first = await register(client, owner, task(f"{target.url}/signed"))
        (hit,) = await target.wait_hits("/signed", 1)
        Webhook(registered["signingSecret"]).verify(hit.body, hit.headers, json_parse=False)
        assert hit.headers["webhook-id"] == first["id"]

        rotated = await client.post("/v1/owners/signer/signing-secret", headers=owner)
        new_secret = rotated.json()["signingSecret"]
        await register(client, owner, task(f"{target.url}/rotated"))
        (hit,) = await target.wait_hits("/rotated", 1)
        for secret in (registered["signingSecret"], new_secret):
            Webhook(secret).verify(hit.body, hit.headers, json_parse=False)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(
                hit.body, hit.headers, json_parse=False
            )
