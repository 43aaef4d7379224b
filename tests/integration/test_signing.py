"""Signed requests on the wire (SPEC §10.5): what the target receives verifies with the
``standardwebhooks`` library, on the raw received body, for every body kind."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.options import Attempt, prepare
from tasks_server.models.queues import QueueRegistration

from .targets import ServerThread
from .targets.http import RecordingServer, Request

KEY = secrets.token_bytes(32)  # the raw key the server holds
CURRENT = "whsec_" + base64.b64encode(KEY).decode()  # the secret the owner was given
PREVIOUS = secrets.token_bytes(24)


@pytest.fixture(scope="module")
def target() -> Iterator[RecordingServer]:
    thread = ServerThread()
    server = thread.run(RecordingServer().start())
    yield server
    thread.run(server.stop())
    thread.close()


@pytest.fixture
async def transport() -> AsyncIterator[CurlTransport]:
    curl = CurlTransport()
    yield curl
    await curl.aclose()


async def deliver(
    transport: CurlTransport, target: RecordingServer, method: str, data: Any, *keys: bytes
) -> Request:
    request: dict[str, Any] = {"url": target.url("/hook"), "method": method}
    if data is not None:
        request["data"] = data
    reg = QueueRegistration.model_validate({"httpRequest": request}, context={"now": 0})
    attempt = Attempt(
        queue_id="01JQUEUEID0000000000000000",
        owner_id="01OWNER",
        retry_count=1,
        retry_limit=3,
        due=0,
        timeout_ms=10_000,
        signing_secrets=keys,
        sent_at_s=int(time.time()),
    )
    options = prepare(reg, attempt, certs_dir=None).options
    response = await transport.send(options, max_body_bytes=10_000, pool="01OWNER")
    assert response.status_code == 200
    (received,) = target.take()
    return received


def received_headers(request: Request) -> dict[str, str]:
    return {name: value for name, value in request.headers}


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("POST", "plain text ünïcode"),
        ("PATCH", {"event": "paid", "amount": 12.5, "meta": {"ok": True}}),
        ("POST", [{"name": "a", "value": "1"}, {"name": "file", "value": "line\r\nbreak"}]),
        ("POST", None),
        ("GET", None),
    ],
)
async def test_the_target_verifies_what_it_received(
    transport: CurlTransport, target: RecordingServer, method: str, data: Any
) -> None:
    request = await deliver(transport, target, method, data, KEY)
    headers = received_headers(request)
    assert headers["webhook-id"] == request.header("x-tasks-queue-id")
    Webhook(CURRENT).verify(request.body, headers, json_parse=False)
    if isinstance(data, list):
        assert request.header("content-type").startswith("multipart/form-data; boundary=")
        assert b'name="file"\r\n\r\nline\r\nbreak\r\n' in request.body


async def test_two_secrets_either_verifies(
    transport: CurlTransport, target: RecordingServer
) -> None:
    form = [{"name": "a", "value": "1"}]
    request = await deliver(transport, target, "POST", form, KEY, PREVIOUS)
    headers = received_headers(request)
    Webhook(CURRENT).verify(request.body, headers, json_parse=False)
    Webhook(PREVIOUS).verify(request.body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.token_bytes(32)).verify(request.body, headers, json_parse=False)
