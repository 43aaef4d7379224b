"""Queue routes and execution semantics, against a real recording target."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import itertools
import logging
import time
from typing import Any

import httpx
import pytest

from tasks_server.settings import Settings
from tasks_server.timeutil import now_ms
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Step, Target

Headers = dict[str, str]


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "queue-owner")


def task(url: str, **config: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": url, "method": "POST", "data": "hello"}, "config": config}


async def register(
    client: httpx.AsyncClient, owner: Headers, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_state(
    client: httpx.AsyncClient, owner: Headers, queue_id: str, *states: str, timeout: float = 10
) -> dict[str, Any]:
    """Poll the API until the task reaches one of `states` (the condition a user would poll)."""
    async with asyncio.timeout(timeout):
        while True:
            body = (await client.get(f"/v1/queues/{queue_id}", headers=owner)).json()
            if body["state"] in states:
                return body  # type: ignore[no-any-return]
            await asyncio.sleep(0.01)


async def test_register_runs_and_records_success(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(
        client, owner, {**task(f"{target.url}/hook", executionDelay=200), "metadata": {"k": "v"}}
    )
    assert created["state"] == "RUNNING" and created["statusCode"] == 0
    assert created["response"] is None and created["metadata"] == {"k": "v"}
    # Times are the server's (on PostgreSQL, the database's clock): compared among themselves.
    assert created["estimateExecutionAt"] == created["createdAt"] + 200
    assert created["estimateEndAt"] == 0
    (hit,) = await target.wait_hits("/hook", 1)
    assert hit.method == "POST" and hit.body == b"hello"
    assert hit.headers["x-tasks-queue-id"] == created["id"]
    assert "x-tasks-retry-count" not in hit.headers
    done = await wait_state(client, owner, created["id"], "SUCCESS")
    assert done["statusCode"] == 200 and base64.b64decode(done["response"]) == b"ok"
    response = await client.get(f"/v1/queues/{created['id']}/attempts", headers=owner)
    (attempt,) = response.json()
    assert attempt["dueAt"] == created["estimateExecutionAt"] <= attempt["startedAt"]
    assert done["estimateEndAt"] == attempt["finishedAt"] >= attempt["startedAt"]


async def test_execute_at_as_date_string_and_epoch(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    at = now_ms() + 400
    from datetime import UTC, datetime

    as_text = datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="milliseconds")
    first = await register(client, owner, task(f"{target.url}/a", executeAt=at))
    second = await register(client, owner, task(f"{target.url}/b", executeAt=as_text))
    assert first["estimateExecutionAt"] == at == second["estimateExecutionAt"]
    (a,) = await target.wait_hits("/a", 1)
    (b,) = await target.wait_hits("/b", 1)
    assert at <= a.at_ms < at + 200 and at <= b.at_ms < at + 200


async def test_retries_until_success_with_retry_headers(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/flaky", Step(500), Step(500), Step(200))
    created = await register(
        client,
        owner,
        task(f"{target.url}/flaky", retry=3, retryInterval=100, retryExponential=False),
    )
    hits = await target.wait_hits("/flaky", 3)
    done = await wait_state(client, owner, created["id"], "SUCCESS")
    assert done["statusCode"] == 200
    assert [h.headers.get("x-tasks-retry-count") for h in hits] == [None, "1", "2"]
    assert hits[1].headers["x-tasks-retry-limit"] == "3"
    for hit in hits[1:]:
        due = int(hit.headers["x-tasks-estimate-next-retry-at"])
        assert due <= hit.at_ms < due + 200
    assert all(later.at_ms - earlier.at_ms >= 100 for earlier, later in itertools.pairwise(hits))
    config = (await client.get(f"/v1/queues/{created['id']}/config", headers=owner)).json()
    assert config["retryCount"] == 2 and config["retryLimit"] == 3
    assert config["retrying"] is False and config["estimateNextRetryAt"] == 0


@pytest.mark.parametrize(
    ("config", "gaps"),
    [
        ({"retryExponential": True}, [150, 300]),  # linear: interval × n
        ({"retryExponential": False}, [150, 150]),
        ({"retryBackoff": "exponential"}, [150, 300]),  # interval × 2^(n-1)
    ],
)
async def test_retry_spacing_measured_on_arrival(
    client: httpx.AsyncClient,
    owner: Headers,
    target: Target,
    config: dict[str, Any],
    gaps: list[int],
) -> None:
    target.script("/fail", Step(503), Step(503), Step(503))
    created = await register(
        client, owner, task(f"{target.url}/fail", retry=2, retryInterval=150, **config)
    )
    hits = await target.wait_hits("/fail", 3)
    done = await wait_state(client, owner, created["id"], "ERROR")
    assert done["statusCode"] == 503
    response = await client.get(f"/v1/queues/{created['id']}/attempts", headers=owner)
    attempts = response.json()
    # Each retry is due exactly its gap after the attempt before it ended, and arrives no
    # sooner; how much later is the load on the machine, which the server measures itself.
    for (before, after), gap in zip(itertools.pairwise(attempts), gaps, strict=True):
        assert after["dueAt"] - before["finishedAt"] == gap
    for (earlier, later), gap in zip(itertools.pairwise(hits), gaps, strict=True):
        assert later.at_ms - earlier.at_ms >= gap


async def test_ignore_status_code_counts_as_success(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/gone", Step(410))
    created = await register(client, owner, task(f"{target.url}/gone", ignoreStatusCode=[410]))
    done = await wait_state(client, owner, created["id"], "SUCCESS", "ERROR")
    assert (done["state"], done["statusCode"]) == ("SUCCESS", 410)


async def test_timeout_is_408_and_error_after_retries(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/slow", Step(delay_ms=5000))
    created = await register(client, owner, task(f"{target.url}/slow", timeout=1000))
    done = await wait_state(client, owner, created["id"], "ERROR")
    assert done["statusCode"] == 408


async def test_response_too_large_is_422(make_settings: MakeSettings, target: Target) -> None:
    target.script("/big", Step(body=b"x" * 5000))
    async with open_client(make_settings(max_size_data_response=1000)) as client:
        owner = await register_owner(client)
        created = await register(client, owner, task(f"{target.url}/big"))
        done = await wait_state(client, owner, created["id"], "ERROR")
    assert done["statusCode"] == 422


async def test_transport_error_is_500_with_curl_text(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    from tests.integration.server import free_port

    created = await register(client, owner, task(f"http://127.0.0.1:{free_port()}/x"))
    done = await wait_state(client, owner, created["id"], "ERROR")
    assert done["statusCode"] == 500
    assert base64.b64decode(done["response"]).startswith(b"Failed to connect")


async def test_metrics_count_an_attempt_without_an_answer_in_no_status_class(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    """A refused connection is no 5xx answer (SPEC §19.5): an alert on 5xx answers must not
    fire on it, though the task reports 500 as the original did."""
    from tests.integration.server import free_port

    created = await register(client, owner, task(f"http://127.0.0.1:{free_port()}/x"))
    await wait_state(client, owner, created["id"], "ERROR")
    text = (await client.get("/metrics")).text
    assert 'tasks_attempts_total{outcome="TRANSPORT",status_class="none"} 1.0' in text
    assert 'status_class="5xx"' not in text


async def test_trace_response_data_false_keeps_no_body(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(client, owner, task(f"{target.url}/t", traceResponseData=False))
    done = await wait_state(client, owner, created["id"], "SUCCESS")
    assert done["response"] is None


async def test_pause_resume_keeps_remaining_delay(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(client, owner, task(f"{target.url}/p", executionDelay=1500))
    queue_id = created["id"]
    paused = await client.patch(f"/v1/queues/{queue_id}/pause", headers=owner)
    assert paused.status_code == 200 and paused.json() == {"status": "Done"}
    state = (await client.get(f"/v1/queues/{queue_id}", headers=owner)).json()
    assert state["state"] == "PAUSED" and state["estimateEndAt"] > 0
    remaining = created["estimateExecutionAt"] - state["estimateEndAt"]
    assert (await client.patch(f"/v1/queues/{queue_id}/pause", headers=owner)).status_code == 422
    sent = now_ms()
    resumed = await client.patch(f"/v1/queues/{queue_id}/resume", headers=owner)
    answered = now_ms()
    assert resumed.status_code == 200
    body = resumed.json()
    assert body["state"] == "RUNNING" and body["estimateEndAt"] == 0
    # Due the remaining delay after the resume, which happened while the request was served.
    assert sent <= body["estimateExecutionAt"] - remaining <= answered
    (hit,) = await target.wait_hits("/p", 1)
    assert hit.at_ms >= body["estimateExecutionAt"]


async def test_paused_task_does_not_run(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(client, owner, task(f"{target.url}/never", executionDelay=300))
    await client.patch(f"/v1/queues/{created['id']}/pause", headers=owner)
    marker = await register(client, owner, task(f"{target.url}/marker", executionDelay=600))
    await wait_state(client, owner, marker["id"], "SUCCESS")
    assert target.hits_for("/never") == []


@pytest.mark.parametrize("how", ["revoke", "delete", "pause"])
async def test_abort_in_flight(
    client: httpx.AsyncClient, owner: Headers, target: Target, how: str
) -> None:
    target.script("/slow", Step(delay_ms=20_000))
    created = await register(client, owner, task(f"{target.url}/slow"))
    await target.wait_hits("/slow", 1)
    url = f"/v1/queues/{created['id']}"
    if how == "delete":
        response = await client.delete(url, headers=owner)
    else:
        response = await client.patch(f"{url}/{how}", headers=owner)
    assert response.status_code == 200 and response.json() == {"status": "Done"}
    await target.wait_disconnect("/slow")
    after = await client.get(url, headers=owner)
    if how == "delete":
        assert after.status_code == 404
    else:
        assert after.json()["state"] == {"revoke": "REVOKED", "pause": "PAUSED"}[how]
        assert after.json()["statusCode"] == 0


async def test_execute_now(client: httpx.AsyncClient, owner: Headers, target: Target) -> None:
    created = await register(client, owner, task(f"{target.url}/now", executionDelay=3_600_000))
    response = await client.post(f"/v1/queues/{created['id']}/execute", headers=owner)
    assert response.status_code == 200 and response.json() == {"status": "Done"}
    await target.wait_hits("/now", 1)
    await wait_state(client, owner, created["id"], "SUCCESS")
    again = await client.post(f"/v1/queues/{created['id']}/execute", headers=owner)
    assert again.status_code == 422


async def test_edit_then_run_with_edited_request(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await register(client, owner, task(f"{target.url}/old", executionDelay=3_600_000))
    patch = {
        "httpRequest": {"url": f"{target.url}/new", "headers": {"X-Edited": "yes"}},
        "config": {"executionDelay": 100},
        "metadata": {"edited": "1"},
    }
    edited = await client.patch(f"/v1/queues/{created['id']}", json=patch, headers=owner)
    assert edited.status_code == 200, edited.text
    assert edited.json()["estimateExecutionAt"] < created["estimateExecutionAt"]
    assert edited.json()["metadata"] == {"edited": "1"}
    (hit,) = await target.wait_hits("/new", 1)
    assert hit.headers["x-edited"] == "yes" and hit.body == b"hello"
    assert target.hits_for("/old") == []
    await wait_state(client, owner, created["id"], "SUCCESS")
    late = await client.patch(f"/v1/queues/{created['id']}", json=patch, headers=owner)
    assert late.status_code == 422


async def test_edit_is_validated_in_full(client: httpx.AsyncClient, owner: Headers) -> None:
    created = await register(client, owner, task("http://127.0.0.1:9/x", executionDelay=3_600_000))
    url = f"/v1/queues/{created['id']}"
    bad = await client.patch(url, json={"httpRequest": {"method": "TRACE"}}, headers=owner)
    assert bad.status_code == 400
    assert bad.json()["message"][0]["path"] == "httpRequest.method"
    removed = await client.patch(url, json={"httpRequest": {"url": None}}, headers=owner)
    assert removed.status_code == 400
    assert (await client.patch(url, json=[1], headers=owner)).status_code == 400


async def test_config_is_redacted(client: httpx.AsyncClient, owner: Headers) -> None:
    body = task("http://127.0.0.1:9/x", executionDelay=3_600_000, retry=2)
    body["httpRequest"]["authBasic"] = {"username": "user", "password": "hunter22"}
    body["httpRequest"]["cookie"] = [{"name": "sid", "value": "s3cret"}]
    created = await register(client, owner, body)
    response = await client.get(f"/v1/queues/{created['id']}/config", headers=owner)
    assert response.status_code == 200
    config = response.json()
    assert "hunter22" not in response.text and "s3cret" not in response.text
    assert config["httpRequest"]["authBasic"] == {"username": "user", "password": "***"}
    assert config["httpRequest"]["url"] == "http://127.0.0.1:9/x"
    assert config["retryLimit"] == 2 and config["retryCount"] == 0 and not config["retrying"]


async def test_owner_isolation(client: httpx.AsyncClient, owner: Headers) -> None:
    created = await register(client, owner, task("http://127.0.0.1:9/x", executionDelay=3_600_000))
    other = await register_owner(client, "other-owner")
    url = f"/v1/queues/{created['id']}"
    for method, path in [
        ("GET", url),
        ("GET", f"{url}/config"),
        ("PATCH", f"{url}/pause"),
        ("PATCH", f"{url}/resume"),
        ("PATCH", f"{url}/revoke"),
        ("POST", f"{url}/execute"),
        ("DELETE", url),
    ]:
        response = await client.request(method, path, headers=other)
        assert (response.status_code, response.json()) == (404, {}), (method, path)
    patched = await client.patch(url, json={"config": {"retry": 1}}, headers=other)
    assert patched.status_code == 404
    assert (await client.get("/v1/queues", headers=other)).json() == []
    assert (await client.get(url, headers=owner)).json()["state"] == "RUNNING"


async def test_unknown_id_is_404_empty(client: httpx.AsyncClient, owner: Headers) -> None:
    response = await client.get("/v1/queues/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=owner)
    assert (response.status_code, response.json()) == (404, {})


async def test_list_order_sort_state_limit_offset(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    delays = [5_000_000, 1_000_000, 3_000_000]
    ids = [
        (await register(client, owner, task("http://127.0.0.1:9/x", executionDelay=d)))["id"]
        for d in delays
    ]
    await client.patch(f"/v1/queues/{ids[1]}/pause", headers=owner)

    async def listed(**params: Any) -> list[str]:
        response = await client.get("/v1/queues", params=params, headers=owner)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()]

    assert await listed() == ids
    assert await listed(sort="desc") == ids[::-1]
    assert await listed(order="estimateExecutionAt") == [ids[1], ids[2], ids[0]]
    assert await listed(order="estimateExecutionAt", sort="desc", limit=1, offset=1) == [ids[2]]
    assert await listed(state="PAUSED") == [ids[1]]
    assert await listed(limit=2) == ids[:2]
    rows = (await client.get("/v1/queues", headers=owner)).json()
    assert set(rows[0]) == {
        "id",
        "scheduleId",
        "state",
        "createdAt",
        "statusCode",
        "estimateEndAt",
        "estimateExecutionAt",
        "batchId",
        "ref",
        "method",
        "target",
        "labels",
    }
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"order": "id"}, {"x": 1}):
        assert (await client.get("/v1/queues", params=bad, headers=owner)).status_code == 400


async def test_state_rules(client: httpx.AsyncClient, owner: Headers) -> None:
    created = await register(client, owner, task("http://127.0.0.1:9/x", executionDelay=3_600_000))
    url = f"/v1/queues/{created['id']}"
    assert (await client.patch(f"{url}/resume", headers=owner)).status_code == 422
    assert (await client.patch(f"{url}/revoke", headers=owner)).status_code == 200
    for method, path in [
        ("PATCH", f"{url}/pause"),
        ("PATCH", f"{url}/resume"),
        ("PATCH", f"{url}/revoke"),
        ("POST", f"{url}/execute"),
    ]:
        response = await client.request(method, path, headers=owner)
        assert response.status_code == 422, path
        assert response.json()["action"] == "Do not retry without fixing the problem"
    assert (await client.delete(url, headers=owner)).status_code == 200


async def test_validation_errors_name_fields(client: httpx.AsyncClient, owner: Headers) -> None:
    body = {"httpRequest": {"url": "ftp://x", "method": "GET"}, "config": {"timeout": 5}}
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400
    paths = {problem["path"] for problem in response.json()["message"]}
    assert {"httpRequest.url", "config.timeout"} <= paths
    past = task("http://127.0.0.1:9/x", executeAt=1000)
    assert (await client.post("/v1/queues/register", json=past, headers=owner)).status_code == 400


@pytest.mark.parametrize("end", ["/", "/x/", "?", "/x?"])
async def test_targets_ending_in_slash_or_question_mark_register_and_run(
    client: httpx.AsyncClient, owner: Headers, target: Target, end: str
) -> None:
    """SPEC §15.10: the original refused these, and with them every bare host."""
    created = await register(client, owner, task(f"{target.url}{end}"))
    path = end.rstrip("?") or "/"
    (hit,) = await target.wait_hits(path, 1)
    assert hit.headers["x-tasks-queue-id"] == created["id"]
    done = await wait_state(client, owner, created["id"], "SUCCESS")
    assert done["statusCode"] == 200


def _with(request: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    body = task("http://127.0.0.1:9/x", **config)
    body["httpRequest"].update(request or {})
    return body


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        # SPEC §15.1: hosts libcurl cannot be given, or would reach by another spelling.
        (_with({"url": "http://a..é/x"}), "httpRequest.url", "not a valid host name"),
        (_with({"url": f"http://{'a' * 64}.test/x"}), "httpRequest.url", "not a valid host name"),
        (_with({"url": "http://169.254.169.254./latest"}), "httpRequest.url", "trailing dot"),
        (_with(dohUrl="https://é.a..b/dns-query"), "config.dohUrl", "not a valid host name"),
        (_with(refererUrl="http://from.test./"), "config.refererUrl", "trailing dot"),
        (
            _with(proxy={"protocol": "http", "host": "169.254.169.254."}),
            "config.proxy.host",
            "trailing dot",
        ),
        (_with(callback={"url": "http://127.0.0.1./cb"}), "config.callback.url", "trailing dot"),
        # SPEC §15.8: framing names with "_" for "-", and control characters in values.
        (_with({"headers": {"Content_Length": "0"}}), "httpRequest.headers", "'Content_Length'"),
        (
            _with({"headers": {"Transfer_Encoding": "chunked"}}),
            "httpRequest.headers",
            "'Transfer_Encoding'",
        ),
        (
            _with({"headers": {"Proxy_Authorization": "Basic eA=="}}),
            "httpRequest.headers",
            "'Proxy_Authorization'",
        ),
        (_with({"headers": {"X": "a\x0bb"}}), "httpRequest.headers.X", "control characters"),
        (_with({"headers": {"X": "a\u2028b"}}), "httpRequest.headers.X", "control characters"),
        (_with(proxyHeaders={"X": "a\x0cb"}), "config.proxyHeaders.X", "control characters"),
        (
            _with(failureCallback={"url": "http://127.0.0.1:9/cb", "headers": {"X": "a\x85b"}}),
            "config.failureCallback.headers.X",
            "control characters",
        ),
    ],
)
async def test_refused_hosts_and_headers_are_400_naming_the_field(
    client: httpx.AsyncClient, owner: Headers, body: dict[str, Any], path: str, words: str
) -> None:
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["action"] == "Do not retry without fixing the problem"
    messages = [p["message"] for p in error["message"] if p["path"] == path]
    assert messages and words in messages[0], error
    schedule = {"cron": "@hourly", **body}
    response = await client.post("/v1/schedules", json=schedule, headers=owner)
    assert response.status_code == 400, response.text
    assert path in {p["path"] for p in response.json()["message"]}


async def test_blank_header_values_are_dropped_not_sent(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    """A value of spaces and tabs: the original accepted it and its curl never sent it."""
    body = task(f"{target.url}/blank")
    body["httpRequest"]["headers"] = {"X-Blank": " \t ", "X-Keep": "v"}
    created = await register(client, owner, body)
    (hit,) = await target.wait_hits("/blank", 1)
    assert hit.headers["x-keep"] == "v" and "x-blank" not in hit.headers
    config = (await client.get(f"/v1/queues/{created['id']}/config", headers=owner)).json()
    assert config["httpRequest"]["headers"] == {"X-Keep": "v"}


async def test_limit_is_exact_under_concurrency(make_settings: MakeSettings) -> None:
    settings: Settings = make_settings(max_tasks_in_queue=20)
    async with open_client(settings) as client:
        owner = await register_owner(client)
        body = task("http://127.0.0.1:9/x", executionDelay=3_600_000)
        responses = await asyncio.gather(
            *(client.post("/v1/queues/register", json=body, headers=owner) for _ in range(35))
        )
        codes = [r.status_code for r in responses]
        assert codes.count(201) == 20 and codes.count(422) == 15
        info = (await client.get("/v1/owners/owner-one", headers=owner)).json()
        assert info["tasksInQueue"] == 20 and info["tasksInQueueLimit"] == 20
        assert (await client.delete("/v1/owners/owner-one", headers=owner)).status_code == 422
        first = next(r.json()["id"] for r in responses if r.status_code == 201)
        await client.patch(f"/v1/queues/{first}/revoke", headers=owner)
        assert (
            await client.post("/v1/queues/register", json=body, headers=owner)
        ).status_code == 201


async def test_default_limit_is_1000(client: httpx.AsyncClient, owner: Headers) -> None:
    body = task("http://127.0.0.1:9/x", executionDelay=3_600_000)
    for _ in range(10):
        await asyncio.gather(
            *(client.post("/v1/queues/register", json=body, headers=owner) for _ in range(100))
        )
    over = await client.post("/v1/queues/register", json=body, headers=owner)
    assert over.status_code == 422
    info = (await client.get("/v1/owners/queue-owner", headers=owner)).json()
    assert info["tasksInQueue"] == 1000


async def test_metrics_change_as_tasks_run(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    before = (await client.get("/metrics")).text
    assert 'tasks_by_state{state="SUCCESS"} 0.0' in before
    created = await register(client, owner, task(f"{target.url}/m"))
    await wait_state(client, owner, created["id"], "SUCCESS")
    text = (await client.get("/metrics")).text
    assert 'tasks_by_state{state="SUCCESS"} 1.0' in text
    assert 'tasks_attempts_total{outcome="SUCCESS",status_class="2xx"} 1.0' in text
    assert "tasks_registrations_total 1.0" in text
    assert "tasks_scheduling_lateness_seconds_count 1.0" in text
    assert "tasks_attempts_in_flight 0.0" in text and "tasks_overdue 0.0" in text
    assert "tasks_oldest_overdue_seconds 0.0" in text


async def test_in_flight_and_overdue_gauges(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    target.script("/hang", Step(delay_ms=20_000))
    created = await register(client, owner, task(f"{target.url}/hang"))
    await target.wait_hits("/hang", 1)
    assert "tasks_attempts_in_flight 1.0" in (await client.get("/metrics")).text
    await client.patch(f"/v1/queues/{created['id']}/revoke", headers=owner)


async def test_task_events_are_logged(
    client: httpx.AsyncClient, owner: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="tasks_server")
    created = await register(client, owner, task("http://127.0.0.1:9/x", executionDelay=3_600_000))
    url = f"/v1/queues/{created['id']}"
    await client.patch(f"{url}/pause", headers=owner)
    await client.patch(f"{url}/resume", headers=owner)
    await client.patch(f"{url}/revoke", headers=owner)
    await client.delete(url, headers=owner)
    actions = [getattr(r, "action", None) for r in caplog.records if getattr(r, "queue_id", None)]
    assert actions == ["registered", "paused", "resumed", "revoked", "deleted"]


async def test_attempt_events_are_logged_with_status_and_duration(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    finished = asyncio.Event()
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if getattr(record, "action", None) == "success":
                finished.set()

    handler = Collect()
    logger = logging.getLogger("tasks_server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        target.script("/logged", Step(status=503))
        created = await register(
            client, owner, task(f"{target.url}/logged", retry=1, retryInterval=50)
        )
        async with asyncio.timeout(10):
            await finished.wait()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    mine = [r for r in records if getattr(r, "queue_id", None) == created["id"]]
    # One line per attempt, when it ends (none at its start: it would double the cost).
    assert [(r.action, r.levelname) for r in mine] == [  # type: ignore[attr-defined]
        ("registered", "INFO"),
        ("retry_scheduled", "WARNING"),
        ("success", "INFO"),
    ]
    retried, done = mine[1:]
    assert retried.attempt == 1 and retried.lateness_ms >= 0  # type: ignore[attr-defined]
    assert retried.status_code == 503 and retried.retry_at > 0  # type: ignore[attr-defined]
    assert done.attempt == 2 and done.lateness_ms >= 0  # type: ignore[attr-defined]
    assert done.status_code == 200 and done.duration_ms >= 0  # type: ignore[attr-defined]


async def test_smuggling_registration_is_refused_and_owners_get_their_own_answers(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    """SPEC §10.1, the poisoning scenario through the API: A's desynchronising task is refused,
    and tasks of two owners to one keep-alive target each record their own answer."""
    smuggling = task(f"{target.url}/a")
    smuggling["httpRequest"]["headers"] = {"Content-Length": "0"}
    smuggling["httpRequest"]["data"] = "GET /smuggled HTTP/1.1\r\nHost: target\r\n\r\n"
    response = await client.post("/v1/queues/register", json=smuggling, headers=owner)
    assert response.status_code == 400 and "'Content-Length'" in response.text

    other = await register_owner(client, "other-owner")
    target.script("/a", Step(body=b"for-a"))
    target.script("/b", Step(body=b"for-b"))
    a = await register(client, owner, task(f"{target.url}/a"))
    await wait_state(client, owner, a["id"], "SUCCESS")
    b = await register(client, other, task(f"{target.url}/b"))
    done = await wait_state(client, other, b["id"], "SUCCESS")
    assert base64.b64decode(done["response"]) == b"for-b"


async def test_a_registration_cancelled_after_its_commit_still_runs(
    make_settings: MakeSettings, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client hangs up between the commit and the answer: the task, already leased to
    this process, is still handed to its scheduler (no orphaned lease)."""
    app = open_client(make_settings())
    async with app as client:
        owner = await register_owner(client)
        store = app.services.store
        insert, committed, go_on = store.insert, asyncio.Event(), asyncio.Event()

        async def slow_insert(**fields: Any) -> Any:
            result = await insert(**fields)
            committed.set()
            await go_on.wait()
            return result

        monkeypatch.setattr(store, "insert", slow_insert)
        body = task(f"{target.url}/orphan")
        request = asyncio.create_task(client.post("/v1/queues/register", json=body, headers=owner))
        await committed.wait()
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request
        go_on.set()
        (hit,) = await target.wait_hits("/orphan", 1, timeout=5)
        assert hit.method == "POST"


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_on_429_and_503_delays_the_retry(
    client: httpx.AsyncClient, owner: Headers, target: Target, form: str
) -> None:
    """SPEC §11.4: the next retry waits at least what Retry-After says (both forms)."""
    for status in (429, 503):
        if form == "seconds":
            value = b"1"
        else:  # an HTTP date has whole seconds: 2 s ahead is at least 1 s away
            value = email.utils.formatdate(time.time() + 2, usegmt=True).encode()
        path = f"/busy-{status}-{form}"
        target.script(path, Step(status, headers=((b"retry-after", value),)), Step(200))
        created = await register(client, owner, task(f"{target.url}{path}", retry=1))
        first, second = await target.wait_hits(path, 2)
        assert second.at_ms - first.at_ms >= 990, (status, form)
        await wait_state(client, owner, created["id"], "SUCCESS")
