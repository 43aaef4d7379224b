"""Outcome callbacks (SPEC §11.2): a task of its own, stored with the outcome it reports."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests.api.test_metrics import _sample
from tests.api.test_queues import register, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target

Headers = dict[str, str]


async def signed_owner(client: httpx.AsyncClient, name: str) -> tuple[Headers, str]:
    """An owner's auth headers and its signing secret."""
    body = (await client.post("/v1/owners/register", json={"name": name})).json()
    headers = {"Authorization": f"Bearer {body['key']}", "X-Tasks-Owner-Id": body["id"]}
    return headers, body["signingSecret"]


def with_callbacks(url: str, **config: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": url, "method": "POST", "data": "work"}, "config": config}


async def callback_of(client: httpx.AsyncClient, owner: Headers, queue_id: str) -> str:
    done = await wait_state(client, owner, queue_id, "SUCCESS", "ERROR")
    assert done["callbackQueueId"] is not None, done
    return str(done["callbackQueueId"])


async def test_success_callback_reports_the_outcome_signed(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner, secret = await signed_owner(client, "callback-owner")
    long_answer = b"x" * 5000  # its base64 is over the 4096 characters a client's data may hold
    target.script("/work", Step(200, body=long_answer))
    created = await register(
        client,
        owner,
        {
            **with_callbacks(
                f"{target.url}/work",
                callback={"url": f"{target.url}/done", "headers": {"X-Token": "t-1"}},
                failureCallback={"url": f"{target.url}/failed"},
            ),
            "metadata": {"order": "ORD-1"},
        },
    )
    assert created["callbackQueueId"] is None and created["callbackOf"] is None
    (hit,) = await target.wait_hits("/done", 1)
    child_id = await callback_of(client, owner, created["id"])
    assert orjson.loads(hit.body) == {
        "queueId": created["id"],
        "state": "SUCCESS",
        "statusCode": 200,
        "attempts": 1,
        "response": base64.b64encode(long_answer).decode(),
        "metadata": {"order": "ORD-1"},
        "scheduleId": None,
    }
    assert hit.method == "POST"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-tasks-callback"] == "success"
    assert hit.headers["x-token"] == "t-1"
    assert hit.headers["webhook-id"] == child_id == hit.queue_id
    Webhook(secret).verify(hit.body, hit.headers, json_parse=False)

    child = await wait_state(client, owner, child_id, "SUCCESS")
    assert child["callbackOf"] == created["id"] and child["callbackQueueId"] is None
    attempts = (await client.get(f"/v1/queues/{child_id}/attempts", headers=owner)).json()
    assert [(a["attempt"], a["outcome"], a["statusCode"]) for a in attempts] == [
        (1, "SUCCESS", 200)
    ]
    assert target.hits_for("/failed") == []
    text = (await client.get("/metrics")).text
    assert _sample(text, "tasks_callbacks_queued_total", kind="success") == 1
    assert _sample(text, "tasks_callbacks_finished_total", outcome="SUCCESS") == 1


async def test_failure_callback_after_the_retries_are_exhausted(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner, secret = await signed_owner(client, "failing-owner")
    target.script("/work", Step(500), Step(500))
    created = await register(
        client,
        owner,
        with_callbacks(
            f"{target.url}/work",
            retry=1,
            retryInterval=1,
            traceResponseData=False,
            callback={"url": f"{target.url}/done"},
            failureCallback={"url": f"{target.url}/failed"},
        ),
    )
    (hit,) = await target.wait_hits("/failed", 1)
    assert len(target.hits_for("/work")) == 2
    assert orjson.loads(hit.body) == {
        "queueId": created["id"],
        "state": "ERROR",
        "statusCode": 500,
        "attempts": 2,
        "response": None,
        "metadata": None,
        "scheduleId": None,
    }
    assert hit.headers["x-tasks-callback"] == "failure"
    Webhook(secret).verify(hit.body, hit.headers, json_parse=False)
    child_id = await callback_of(client, owner, created["id"])
    assert (await wait_state(client, owner, child_id, "SUCCESS"))["callbackOf"] == created["id"]
    assert target.hits_for("/done") == []
    text = (await client.get("/metrics")).text
    assert _sample(text, "tasks_callbacks_queued_total", kind="failure") == 1


async def test_no_callback_on_the_other_outcome(client: httpx.AsyncClient, target: Target) -> None:
    """The callback task is stored with the outcome: none there means none at all."""
    owner = await register_owner(client, "other-outcome")
    target.script("/fails", Step(500))
    succeeded = await register(
        client,
        owner,
        with_callbacks(f"{target.url}/works", failureCallback={"url": f"{target.url}/failed"}),
    )
    failed = await register(
        client,
        owner,
        with_callbacks(f"{target.url}/fails", callback={"url": f"{target.url}/done"}),
    )
    assert (await wait_state(client, owner, succeeded["id"], "SUCCESS"))["callbackQueueId"] is None
    assert (await wait_state(client, owner, failed["id"], "ERROR"))["callbackQueueId"] is None
    listed = (await client.get("/v1/queues", headers=owner)).json()
    assert {row["id"] for row in listed} == {succeeded["id"], failed["id"]}
    assert target.hits_for("/failed") == target.hits_for("/done") == []


async def test_a_failing_callback_is_retried_on_its_own_policy(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client, "retried-owner")
    target.script("/done", Step(503, body=b"busy"))
    created = await register(
        client, owner, with_callbacks(f"{target.url}/work", callback={"url": f"{target.url}/done"})
    )
    (first,) = await target.wait_hits("/done", 1)
    child_id = await callback_of(client, owner, created["id"])
    async with asyncio.timeout(10):
        while True:  # the first attempt's outcome may still be being written
            config = (await client.get(f"/v1/queues/{child_id}/config", headers=owner)).json()
            if config["retrying"]:
                break
            await asyncio.sleep(0.01)
    assert config["retryLimit"] == 5 and config["retryCount"] == 1
    assert config["config"]["retryInterval"] == 5000
    assert config["config"]["retryBackoff"] == "exponential"
    assert "callback" not in config["config"] and "failureCallback" not in config["config"]
    assert config["estimateNextRetryAt"] >= first.at_ms + 4900  # 5 s, exponential
    # The owner need not wait: the callback is a task like any other.
    executed = await client.post(f"/v1/queues/{child_id}/execute", headers=owner)
    assert executed.status_code == 200, executed.text
    second = (await target.wait_hits("/done", 2))[1]
    assert second.body == first.body and second.headers["x-tasks-retry-count"] == "1"
    await wait_state(client, owner, child_id, "SUCCESS")
    attempts = (await client.get(f"/v1/queues/{child_id}/attempts", headers=owner)).json()
    assert [(a["outcome"], a["statusCode"]) for a in attempts] == [
        ("FAILURE", 503),
        ("SUCCESS", 200),
    ]
    assert base64.b64decode(attempts[0]["response"]) == b"busy"


async def test_a_pending_callback_can_be_paused_but_not_edited(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client, "pausing-owner")
    target.script("/done", Step(503))
    created = await register(
        client, owner, with_callbacks(f"{target.url}/work", callback={"url": f"{target.url}/done"})
    )
    await target.wait_hits("/done", 1)
    child_id = await callback_of(client, owner, created["id"])
    async with asyncio.timeout(10):
        while True:  # wait for the first attempt's outcome: the retry is 5 s away
            child = (await client.get(f"/v1/queues/{child_id}", headers=owner)).json()
            if child["statusCode"] == 503:
                break
            await asyncio.sleep(0.01)
    edited = await client.patch(
        f"/v1/queues/{child_id}", json={"config": {"retry": 0}}, headers=owner
    )
    assert edited.status_code == 422
    assert "cannot be edited" in edited.json()["message"]
    paused = await client.patch(f"/v1/queues/{child_id}/pause", headers=owner)
    assert paused.status_code == 200, paused.text
    revoked = await client.patch(f"/v1/queues/{child_id}/revoke", headers=owner)
    assert revoked.status_code == 200, revoked.text
    assert (await client.get(f"/v1/queues/{child_id}", headers=owner)).json()["state"] == "REVOKED"


async def test_a_full_queue_does_not_stop_a_callback(
    make_settings: MakeSettings, target: Target
) -> None:
    """The owner's limit, lowered below what it holds, refuses new tasks but not a callback."""
    body = with_callbacks(
        f"{target.url}/work", executionDelay=600_000, callback={"url": f"{target.url}/done"}
    )
    async with open_client(make_settings(max_tasks_in_queue=2)) as client:
        owner = await register_owner(client, "full-owner")
        created = await register(client, owner, body)
        await register(client, owner, body)
    async with open_client(make_settings(max_tasks_in_queue=1)) as client:
        refused = await client.post("/v1/queues/register", json=body, headers=owner)
        assert refused.status_code == 422
        executed = await client.post(f"/v1/queues/{created['id']}/execute", headers=owner)
        assert executed.status_code == 200, executed.text
        await target.wait_hits("/done", 1)
        child_id = await callback_of(client, owner, created["id"])
        await wait_state(client, owner, child_id, "SUCCESS")


async def test_the_callback_task_belongs_to_the_owner_only(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client, "first-owner")
    other = await register_owner(client, "other-owner")
    created = await register(
        client, owner, with_callbacks(f"{target.url}/work", callback={"url": f"{target.url}/done"})
    )
    child_id = await callback_of(client, owner, created["id"])
    await wait_state(client, owner, child_id, "SUCCESS")
    for path in ("", "/config", "/attempts"):
        response = await client.get(f"/v1/queues/{child_id}{path}", headers=other)
        assert response.status_code == 404, path
    assert (await client.get("/v1/queues", headers=other)).json() == []
    mine = (await client.get("/v1/queues", headers=owner)).json()
    assert {row["id"] for row in mine} == {created["id"], child_id}


async def test_a_schedules_task_reports_its_schedule(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client, "scheduled-owner")
    body = {
        "cron": "* * * * * *",
        "httpRequest": {"url": f"{target.url}/tick", "method": "POST", "data": "tick"},
        "config": {"callback": {"url": f"{target.url}/ticked"}},
    }
    response = await client.post("/v1/schedules", json=body, headers=owner)
    assert response.status_code == 201, response.text
    schedule_id = response.json()["id"]
    hit = (await target.wait_hits("/ticked", 1))[0]
    await client.delete(f"/v1/schedules/{schedule_id}", headers=owner)
    report = orjson.loads(hit.body)
    assert report["scheduleId"] == schedule_id and report["state"] == "SUCCESS"


def _callback(**fields: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/callback", **fields}


@pytest.mark.parametrize(
    ("config", "path", "words"),
    [
        ({"callback": {"url": "ftp://127.0.0.1/x"}}, "config.callback.url", "http or https"),
        ({"callback": {"url": "http://127.0.0.1.:9/x"}}, "config.callback.url", "trailing dot"),
        ({"callback": {}}, "config.callback.url", "Field required"),
        ({"callback": _callback(method="GET")}, "config.callback.method", "Extra inputs"),
        (
            {"failureCallback": _callback(headers={"Content-Length": "1"})},
            "config.failureCallback.headers",
            "'Content-Length' is not allowed",
        ),
        (
            {"callback": _callback(headers={"Webhook-Id": "x"})},
            "config.callback.headers",
            "the server signs requests",
        ),
        (
            {"callback": _callback(headers={"X-Tasks-Callback": "success"})},
            "config.callback.headers",
            "the server sets it on callbacks",
        ),
        (
            {"callback": _callback(headers={"content-type": "text/plain"})},
            "config.callback.headers",
            "the outcome is JSON",
        ),
        ({"callback": "http://127.0.0.1:9/x"}, "config.callback", "valid dictionary"),
    ],
)
async def test_bad_callbacks_get_400(
    client: httpx.AsyncClient, config: dict[str, Any], path: str, words: str
) -> None:
    owner = await register_owner(client, "strict-owner")
    body = with_callbacks("http://127.0.0.1:9/work", **config)
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"action", "message"}
    assert any(p["path"] == path and words in p["message"] for p in error["message"]), error
    schedule = {"cron": "@hourly", "httpRequest": body["httpRequest"], "config": config}
    response = await client.post("/v1/schedules", json=schedule, headers=owner)
    assert response.status_code == 400, response.text


async def test_owner_headers_cannot_pose_as_a_callback(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client, "posing-owner")
    body = with_callbacks("http://127.0.0.1:9/work")
    body["httpRequest"]["headers"] = {"x-tasks-callback": "success"}
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400
    assert "the server sets it on callbacks" in response.text


async def test_refused_callback_literals_get_400(make_settings: MakeSettings) -> None:
    async with open_client(make_settings(destination_deny="loopback")) as client:
        owner = await register_owner(client, "guarded-owner")
        body = with_callbacks(
            "http://localhost:9/work", failureCallback={"url": "http://127.0.0.1:9/failed"}
        )
        response = await client.post("/v1/queues/register", json=body, headers=owner)
        assert response.status_code == 400, response.text
        (problem,) = response.json()["message"]
        assert problem["path"] == "config.failureCallback.url"
        assert "refused by DESTINATION_DENY" in problem["message"]


async def test_config_redacts_callbacks_and_schedules_accept_them(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client, "redacted-owner")
    callback = {"url": "http://127.0.0.1:9/done?token=abc", "headers": {"Authorization": "x"}}
    body = with_callbacks("http://127.0.0.1:9/work", executionDelay=60_000, callback=callback)
    created = await register(client, owner, body)
    config = (await client.get(f"/v1/queues/{created['id']}/config", headers=owner)).json()
    assert config["config"]["callback"] == {
        "url": "http://127.0.0.1:9/done?token=***",
        "headers": {"Authorization": "***"},
    }
    schedule = {
        "cron": "@hourly",
        "httpRequest": body["httpRequest"],
        "config": {"callback": callback},
    }
    response = await client.post("/v1/schedules", json=schedule, headers=owner)
    assert response.status_code == 201, response.text
