"""Tracing (SPEC §19.2): a registration's traceparent reaches every attempt and callback as a
child, and with OTEL_EXPORTER_OTLP_ENDPOINT its spans reach a real OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tasks_server.settings import Settings
from tests.api.test_queues import register, task, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.otlp import OtlpReceiver
from tests.target import Step, Target

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
Headers = dict[str, str]


def _fields(value: str) -> list[str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16, value
    return [trace_id, span_id, flags]


async def _traced(
    client: httpx.AsyncClient, owner: Headers, body: dict[str, Any], traceparent: str = PARENT
) -> dict[str, Any]:
    headers = {**owner, "traceparent": traceparent}
    response = await client.post("/v1/queues/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_every_attempt_sends_a_child_of_the_registrations_traceparent(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    target.script("/flaky", Step(status=503), Step(status=200))
    # The owner's own traceparent header gives way to the server's.
    body = task(f"{target.url}/flaky", retry=1, retryInterval=1)
    body["httpRequest"]["headers"] = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-00"}
    queued = await _traced(client, owner, body, PARENT.replace("-01", "-00"))
    await wait_state(client, owner, queued["id"], "SUCCESS")
    first, second = (hit.headers["traceparent"] for hit in target.hits_for("/flaky"))
    (trace_1, span_1, flags_1), (trace_2, span_2, flags_2) = _fields(first), _fields(second)
    assert trace_1 == trace_2 == TRACE and flags_1 == flags_2 == "00"  # not sampled: kept
    assert len({span_1, span_2, "00f067aa0ba902b7"}) == 3


async def test_a_task_registered_without_one_sends_none(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    await register(client, owner, task(f"{target.url}/plain"))
    (hit,) = await target.wait_hits("/plain", 1)
    assert "traceparent" not in hit.headers


@pytest.mark.parametrize("route", ["/v1/queues/register", "/v1/schedules"])
async def test_a_malformed_traceparent_is_refused_with_400(
    client: httpx.AsyncClient, route: str
) -> None:
    owner = await register_owner(client)
    body: dict[str, Any] = task("http://127.0.0.1:9/x")
    if route == "/v1/schedules":
        body["cron"] = "@daily"
    headers = {**owner, "traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}
    response = await client.post(route, json=body, headers=headers)
    assert response.status_code == 400
    assert "traceparent" in response.json()["message"]


async def test_callbacks_edits_and_replays_keep_the_trace(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    body = task(f"{target.url}/edited", executionDelay=3_600_000)
    body["config"]["callback"] = {"url": f"{target.url}/callback"}
    queued = await _traced(client, owner, body)
    config = (await client.get(f"/v1/queues/{queued['id']}/config", headers=owner)).json()
    assert "traceparent" not in str(config)
    # The trace context is the server's: an owner cannot patch it in.
    sneaky = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    refused = await client.patch(f"/v1/queues/{queued['id']}", json=sneaky, headers=owner)
    assert refused.status_code == 400
    edit = {"config": {"executionDelay": 1}}
    edited = await client.patch(f"/v1/queues/{queued['id']}", json=edit, headers=owner)
    assert edited.status_code == 200, edited.text
    await wait_state(client, owner, queued["id"], "SUCCESS")
    replayed = await client.post(f"/v1/queues/{queued['id']}/replay", headers=owner)
    assert replayed.status_code == 200, replayed.text
    hits = await target.wait_hits("/edited", 2)
    callbacks = await target.wait_hits("/callback", 1)
    for hit in [*hits, *callbacks]:
        assert _fields(hit.headers["traceparent"])[0] == TRACE


async def test_each_fire_of_a_traced_schedule_is_a_child_of_its_trace(
    client: httpx.AsyncClient, target: Target
) -> None:
    owner = await register_owner(client)
    body = {"cron": "* * * * * *", **task(f"{target.url}/tick")}
    headers = {**owner, "traceparent": PARENT}
    created = await client.post("/v1/schedules", json=body, headers=headers)
    assert created.status_code == 201, created.text
    hits = await target.wait_hits("/tick", 1)
    assert _fields(hits[0].headers["traceparent"])[0] == TRACE
    # An edit keeps the schedule's trace; the owner cannot set it.
    sid = created.json()["id"]
    sneaky = await client.patch(f"/v1/schedules/{sid}", json={"traceparent": PARENT}, headers=owner)
    assert sneaky.status_code == 400
    edited = await client.patch(
        f"/v1/schedules/{sid}", json={"cron": "*/2 * * * * *"}, headers=owner
    )
    assert edited.status_code == 200, edited.text
    count = len(target.hits_for("/tick"))
    hits = await target.wait_hits("/tick", count + 1)
    assert _fields(hits[-1].headers["traceparent"])[0] == TRACE


async def _exported(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, target: Target
) -> tuple[OtlpReceiver, list[str]]:
    """Three tasks through an app exporting to a receiver: one registered with a traceparent,
    one without, and one paused while its request is in flight. The app is stopped (which
    flushes its spans) before the receiver is read."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    target.script("/exported", Step(status=500), Step(status=200))
    target.script("/slow", Step(delay_ms=30_000))
    with OtlpReceiver() as receiver:
        settings: Settings = make_settings(otel_exporter_otlp_endpoint=receiver.url)
        async with open_client(settings) as client:
            owner = await register_owner(client)
            body = task(f"{target.url}/exported?token=secret", retry=1, retryInterval=1)
            traced = await _traced(client, owner, body)
            fresh = await register(client, owner, task(f"{target.url}/fresh"))
            for queued in (traced, fresh):
                await wait_state(client, owner, queued["id"], "SUCCESS")
            slow = await _traced(client, owner, task(f"{target.url}/slow"))
            await asyncio.to_thread(target.wait, lambda: target.active["/slow"] == 1)
            paused = await client.patch(f"/v1/queues/{slow['id']}/pause", headers=owner)
            assert paused.status_code == 200, paused.text
            await wait_state(client, owner, slow["id"], "PAUSED")
        ids = [traced["id"], fresh["id"], slow["id"]]
    return receiver, ids


async def test_registration_and_attempt_spans_reach_an_otlp_receiver(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, target: Target
) -> None:
    receiver, (traced_id, fresh_id, slow_id) = await _exported(make_settings, monkeypatch, target)
    assert set(receiver.paths) == {"/v1/traces"}
    registrations = {
        span.attributes["tasks.task_id"]: span for span in receiver.named("task.register")
    }
    attempts = receiver.named("task.attempt")
    hits = [*target.hits_for("/exported"), *target.hits_for("/fresh")]
    # The traced task: its registration is a child of the client's span, each attempt a child
    # of the registration, and each header the target got is its attempt span's context.
    register_span = registrations[traced_id]
    assert (register_span.trace_id, register_span.parent_span_id) == (TRACE, "00f067aa0ba902b7")
    assert register_span.service == "tasks-server" and register_span.kind == 2  # SERVER
    mine = [span for span in attempts if span.attributes["tasks.task_id"] == traced_id]
    assert [span.attributes["tasks.attempt"] for span in mine] == [1, 2]
    assert [span.attributes["tasks.outcome"] for span in mine] == ["FAILURE", "SUCCESS"]
    assert [span.attributes["http.response.status_code"] for span in mine] == [500, 200]
    assert [span.error for span in mine] == [True, False]
    for span in mine:
        assert span.trace_id == TRACE and span.parent_span_id == register_span.span_id
        assert span.kind == 3 and span.attributes["tasks.lateness_ms"] >= 0  # CLIENT
        assert f"00-{TRACE}-{span.span_id}-01" in {hit.headers["traceparent"] for hit in hits}
    # The task registered without one: a new trace started at its registration.
    fresh = registrations[fresh_id]
    assert fresh.parent_span_id == "" and fresh.trace_id != TRACE
    (fresh_attempt,) = (s for s in attempts if s.attributes["tasks.task_id"] == fresh_id)
    assert fresh_attempt.parent_span_id == fresh.span_id
    (sent,) = (hit.headers["traceparent"] for hit in target.hits_for("/fresh"))
    assert sent.startswith(f"00-{fresh.trace_id}-{fresh_attempt.span_id}-")
    # An attempt cut by a pause is a span too, ended as ABORTED.
    (cut,) = (s for s in attempts if s.attributes["tasks.task_id"] == slow_id)
    assert cut.attributes["tasks.outcome"] == "ABORTED" and cut.error
    assert "http.response.status_code" not in cut.attributes
    # No span carries the target URL's secrets.
    assert "secret" not in str(receiver.spans)
