"""Signed requests (SPEC §10.5): ``prepare`` signs the body bytes it hands libcurl.

Every signature is checked with the ``standardwebhooks`` library, never with our own code.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from typing import Any

import pycurl
import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tasks_server.executor.options import Attempt, Preparer, prepare, signer
from tasks_server.models.queues import QueueRegistration

SECRET = secrets.token_bytes(32)
PREVIOUS = secrets.token_bytes(32)
URL = "https://example.test/hook"


def attempt(*keys: bytes, sent_at_s: int | None = None) -> Attempt:
    return Attempt(
        queue_id="01JQUEUEID0000000000000000",
        owner_id="01OWNER",
        retry_count=0,
        retry_limit=0,
        due=0,
        timeout_ms=30_000,
        signing_secrets=keys,
        sent_at_s=int(time.time()) if sent_at_s is None else sent_at_s,
    )


def sent(method: str, data: Any, a: Attempt) -> tuple[bytes, dict[str, str]]:
    """The body bytes libcurl is given and the request headers, as a receiver sees them."""
    request: dict[str, Any] = {"url": URL, "method": method}
    if data is not None:
        request["data"] = data
    reg = QueueRegistration.model_validate({"httpRequest": request}, context={"now": 0})
    options = dict(prepare(reg, a, certs_dir=None).options)
    lines = [h.decode() if isinstance(h, bytes) else h for h in options[pycurl.HTTPHEADER]]
    headers = dict(line.split(": ", 1) for line in lines)
    return options.get(pycurl.POSTFIELDS, b""), headers


BODIES = {
    "text": ("POST", "héllo wörld"),
    "json": ("PUT", {"a": 1.5, "nested": {"b": True, "c": None, "d": "ü"}}),
    "multipart": ("POST", [{"name": "field", "value": "one"}, {"name": "other", "value": "twö"}]),
    "empty-post": ("POST", None),
    "get": ("GET", None),
    "delete-drops-data": ("DELETE", "dropped"),
}


@pytest.mark.parametrize("kind", BODIES)
def test_each_body_kind_verifies(kind: str) -> None:
    method, data = BODIES[kind]
    body, headers = sent(method, data, attempt(SECRET))
    assert headers["webhook-id"] == "01JQUEUEID0000000000000000"
    Webhook(SECRET).verify(body, headers, json_parse=False)
    if kind in ("get", "empty-post", "delete-drops-data"):
        assert body == b""
    tampered = dict(headers, **{"webhook-id": "01JOTHERID0000000000000000"})
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, tampered, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers, json_parse=False)


def test_two_secrets_during_rotation_either_verifies() -> None:
    body, headers = sent("POST", {"k": "v"}, attempt(SECRET, PREVIOUS))
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(SECRET).verify(body, headers) == {"k": "v"}
    assert Webhook(PREVIOUS).verify(body, headers) == {"k": "v"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.token_bytes(32)).verify(body, headers)


def test_the_timestamp_is_the_attempts() -> None:
    _, headers = sent("GET", None, attempt(SECRET, sent_at_s=1_700_000_000))
    assert headers["webhook-timestamp"] == "1700000000"
    stale = dataclasses.replace(attempt(SECRET), sent_at_s=int(time.time()) - 3600)
    body, headers = sent("GET", None, stale)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, headers, json_parse=False)


def test_no_secret_no_signature_headers() -> None:
    _, headers = sent("POST", "x", attempt())
    assert not [name for name in headers if name.lower().startswith("webhook-")]


@pytest.mark.parametrize("name", ["webhook-signature", "Webhook-Id", "WEBHOOK-TIMESTAMP"])
def test_owners_cannot_set_webhook_headers(name: str) -> None:
    request = {"url": URL, "method": "POST", "headers": {name: "v1,forged"}}
    with pytest.raises(ValidationError, match="the server signs requests"):
        QueueRegistration.model_validate({"httpRequest": request}, context={"now": 0})


def test_a_preparer_signs_with_the_keyed_states_it_is_given() -> None:
    """The app's preparer takes each secret's keyed state from `SigningKeys` (which drops it
    on rotation) instead of keying anew: the same signatures either way."""
    asked: list[tuple[str, bytes]] = []

    def signers(owner_id: str, secret: bytes) -> hmac.HMAC:
        asked.append((owner_id, secret))
        return signer(secret)

    reg = QueueRegistration.model_validate(
        {"httpRequest": {"url": URL, "method": "POST", "data": "x"}}, context={"now": 0}
    )
    a = attempt(SECRET, PREVIOUS)
    prepared = Preparer(certs_dir=None, signers=signers).prepare(reg, a)
    assert prepared == prepare(reg, a, certs_dir=None)
    assert asked == [("01OWNER", SECRET), ("01OWNER", PREVIOUS)]
