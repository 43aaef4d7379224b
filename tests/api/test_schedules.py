"""Recurring schedules (SPEC §11.1): the routes, firing, catch-up, skips and exactly-once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from ulid import ULID

from tasks_server.codec import TaskCodec
from tasks_server.cron import Cron
from tasks_server.crypto import Cipher
from tasks_server.metrics import Metrics
from tasks_server.schedule_lifecycle import ScheduleChange
from tasks_server.schedules import REQUEST, ScheduleRunner
from tasks_server.settings import Settings
from tasks_server.store.base import FireOutcome, NewTask, QueueRow, ScheduleRow
from tasks_server.store.sqlite import SqliteStore
from tasks_server.timeutil import now_ms
from tests.api.test_queues import Headers, wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Target


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Headers:
    return await register_owner(client, "schedule-owner")


def schedule(url: str, cron: str = "0 * * * *", **extra: Any) -> dict[str, Any]:
    return {"cron": cron, "httpRequest": {"url": url, "method": "POST", "data": "tick"}, **extra}


async def create(client: httpx.AsyncClient, owner: Headers, body: dict[str, Any]) -> Any:
    response = await client.post("/v1/schedules", json=body, headers=owner)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_list_edit_pause_resume_delete(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    before = now_ms()
    body = schedule("http://127.0.0.1:9/x", "30 9 * * 1-5", timezone="Europe/Paris")
    created = await create(client, owner, {**body, "metadata": {"team": "ops"}})
    assert set(created) == {
        "id",
        "state",
        "cron",
        "timezone",
        "createdAt",
        "nextRunAt",
        "lastRunAt",
        "lastQueueId",
        "metadata",
        "labels",
        "method",
        "target",
    }
    assert created["state"] == "ACTIVE" and created["metadata"] == {"team": "ops"}
    assert created["nextRunAt"] > before and created["lastQueueId"] is None
    sid = created["id"]
    assert (await client.get(f"/v1/schedules/{sid}", headers=owner)).json() == created
    assert [s["id"] for s in (await client.get("/v1/schedules", headers=owner)).json()] == [sid]

    edited = await client.patch(f"/v1/schedules/{sid}", json={"cron": "@hourly"}, headers=owner)
    assert edited.status_code == 200 and edited.json()["cron"] == "@hourly"
    assert edited.json()["nextRunAt"] % 3_600_000 == 0
    bad = await client.patch(f"/v1/schedules/{sid}", json={"cron": "nope"}, headers=owner)
    assert bad.status_code == 400

    paused = await client.patch(f"/v1/schedules/{sid}/pause", headers=owner)
    assert paused.json()["state"] == "PAUSED" and paused.json()["nextRunAt"] == 0
    assert (await client.patch(f"/v1/schedules/{sid}/pause", headers=owner)).status_code == 422
    resumed = await client.patch(f"/v1/schedules/{sid}/resume", headers=owner)
    assert resumed.json()["state"] == "ACTIVE" and resumed.json()["nextRunAt"] > before

    other = await register_owner(client, "schedule-other")
    for method, path in (("GET", ""), ("PATCH", "/pause"), ("DELETE", "")):
        response = await client.request(method, f"/v1/schedules/{sid}{path}", headers=other)
        assert (response.status_code, response.json()) == (404, {})
    assert (await client.get("/v1/schedules", headers=other)).json() == []

    assert (await client.delete(f"/v1/schedules/{sid}", headers=owner)).status_code == 200
    assert (await client.get(f"/v1/schedules/{sid}", headers=owner)).status_code == 404


async def test_config_shows_the_stored_request_redacted(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    body = schedule("http://user:pw@127.0.0.1:9/x?token=abc", metadata={"team": "ops"})
    body["httpRequest"]["headers"] = {"Authorization": "Bearer secret", "X-Kind": "tick"}
    sid = (await create(client, owner, {**body, "config": {"retry": 2}}))["id"]
    response = await client.get(f"/v1/schedules/{sid}/config", headers=owner)
    assert response.status_code == 200
    config = response.json()
    assert set(config) == {
        *("httpRequest", "config", "metadata"),
        *("missedRuns", "catchUpWindow", "overlap"),  # SPEC §18.3, their defaults here
    }
    assert config["httpRequest"]["url"] == "http://user:***@127.0.0.1:9/x?token=***"
    assert config["httpRequest"]["headers"] == {"Authorization": "***", "X-Kind": "tick"}
    assert config["httpRequest"]["data"] == "tick"
    assert config["config"]["retry"] == 2 and config["metadata"] == {"team": "ops"}
    assert "secret" not in response.text and "pw@" not in response.text
    other = await register_owner(client, "schedule-other")
    assert (await client.get(f"/v1/schedules/{sid}/config", headers=other)).status_code == 404
    assert (await client.delete(f"/v1/schedules/{sid}", headers=owner)).status_code == 200
    assert (await client.get(f"/v1/schedules/{sid}/config", headers=owner)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"cron": "0 * * * *", "timezone": "Mars/Olympus"},
        {"cron": "0 * * * *", "config": {"executeAt": 1}},
        {"cron": "0 * * * *", "config": {"executionDelay": 5}},
        {"cron": "0 * * * *", "config": {"timeoutAt": 1}},
        {"cron": "0 * * * *", "unknown": 1},
        {"cron": 5},
    ],
)
async def test_invalid_schedules_are_refused(
    client: httpx.AsyncClient, owner: Headers, body: dict[str, Any]
) -> None:
    full = {"httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"}, **body}
    response = await client.post("/v1/schedules", json=full, headers=owner)
    assert response.status_code == 400, response.text


async def test_max_schedules_per_owner(make_settings: MakeSettings) -> None:
    async with open_client(make_settings(max_schedules=2)) as client:
        owner = await register_owner(client)
        for _ in range(2):
            await create(client, owner, schedule("http://127.0.0.1:9/x"))
        response = await client.post(
            "/v1/schedules", json=schedule("http://127.0.0.1:9/x"), headers=owner
        )
        assert response.status_code == 422 and "limit" in response.json()["message"]


async def test_a_seconds_schedule_fires_tasks_on_time_and_stops_when_paused(
    client: httpx.AsyncClient, owner: Headers, target: Target
) -> None:
    created = await create(
        client, owner, schedule(f"{target.url}/tick", "*/2 * * * * *", metadata={"k": "v"})
    )
    sid = created["id"]
    hits = await target.wait_hits("/tick", 2, timeout=10)
    listed = (await client.get(f"/v1/queues?scheduleId={sid}", headers=owner)).json()
    assert len(listed) >= 2 and all(task["scheduleId"] == sid for task in listed)
    for task in listed[:2]:
        assert task["estimateExecutionAt"] % 2000 == 0  # due exactly at its fire time
        done = await wait_state(client, owner, task["id"], "SUCCESS")
        assert done["metadata"] == {"k": "v"}
        (attempt,) = (await client.get(f"/v1/queues/{task['id']}/attempts", headers=owner)).json()
        assert attempt["latenessMs"] < 1000  # fired on time, not a fire time late
    assert {hit.queue_id for hit in hits} <= {task["id"] for task in listed}
    assert (await client.get(f"/v1/schedules/{sid}", headers=owner)).json()["lastQueueId"]

    await client.patch(f"/v1/schedules/{sid}/pause", headers=owner)
    count = len((await client.get(f"/v1/queues?scheduleId={sid}", headers=owner)).json())
    # A second schedule firing twice marks two fire times passing: the paused one stayed put.
    await create(client, owner, schedule(f"{target.url}/marker", "*/2 * * * * *"))
    await target.wait_hits("/marker", 2, timeout=10)
    after = len((await client.get(f"/v1/queues?scheduleId={sid}", headers=owner)).json())
    assert after == count
    bad = await client.get("/v1/queues?scheduleId=not-an-id", headers=owner)
    assert bad.status_code == 400


async def test_a_fire_into_a_full_queue_is_skipped_and_counted(
    make_settings: MakeSettings, target: Target
) -> None:
    async with open_client(make_settings(max_tasks_in_queue=1)) as client:
        owner = await register_owner(client)
        body = {
            "httpRequest": {"url": f"{target.url}/far", "method": "GET"},
            "config": {"executionDelay": 3_600_000},
        }
        assert (
            await client.post("/v1/queues/register", json=body, headers=owner)
        ).status_code == 201
        created = await create(client, owner, schedule(f"{target.url}/tick", "* * * * * *"))
        async with asyncio.timeout(10):
            while True:
                text = (await client.get("/metrics")).text
                if 'tasks_schedule_fires_total{outcome="limit_reached"}' in text:
                    break
                await asyncio.sleep(0.05)  # polling /metrics, as a scraper would
        assert "tasks_schedules_active 1.0" in text
        listed = await client.get(f"/v1/queues?scheduleId={created['id']}", headers=owner)
        assert listed.json() == [] and target.hits_for("/tick") == []


class Clock:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self) -> int:
        return self.at


async def _runner(tmp_path: Path, clock: Clock) -> tuple[SqliteStore, ScheduleRunner, list[str]]:
    store = SqliteStore(tmp_path / "runner.db", clock=clock)
    await store.open()
    registered: list[str] = []

    def on_task(queue_id: str, _row: QueueRow) -> None:
        registered.append(queue_id)

    codec = TaskCodec(Cipher.from_secret("schedule-test"))
    runner = ScheduleRunner(store, codec, on_task, Metrics(), queue_limit=1000, clock=clock)
    return store, runner, registered


async def _schedule_in(store: SqliteStore, codec: TaskCodec, cron: str, now: int) -> str:
    owner_id, schedule_id = str(ULID()), str(ULID())
    await store.create_owner(owner_id=owner_id, name="clocked", key_digest=b"-", created_at=0)
    document = {"httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"}, "config": {}}
    await store.create_schedule(
        schedule_id=schedule_id,
        owner_id=owner_id,
        cron=cron,
        timezone="UTC",
        created_at=now,
        next_run_at=Cron(cron).next_after(now),
        request=codec.seal_json(document, schedule_id, REQUEST),
        metadata=None,
        limit=10,
    )
    return owner_id


async def test_missed_fire_times_give_one_catch_up_task(tmp_path: Path) -> None:
    start = 1_800_000_000_000  # a whole hour
    clock = Clock(start)
    store, runner, registered = await _runner(tmp_path, clock)
    try:
        codec = TaskCodec(Cipher.from_secret("schedule-test"))
        owner_id = await _schedule_in(store, codec, "*/5 * * * *", start)
        clock.at = start + 3 * 3_600_000 + 17_000  # three hours down: 36 fire times missed
        assert await runner.run_once() == 1
        assert await runner.run_once() == 0  # the next is on schedule, not another catch-up
        (task,) = await store.list_tasks(
            owner_id,
            order="createdAt",
            descending=False,
            limit=10,
            offset=0,
        )
        assert task.estimate_execution_at == clock.at and registered == [task.id]
        (row,) = await store.list_schedules(owner_id, limit=10, offset=0)
        assert row.next_run_at == start + 3 * 3_600_000 + 300_000
        clock.at = row.next_run_at - 500  # within the lead: registered ahead, due on time
        assert await runner.run_once() == 1
    finally:
        await runner.stop()
        await store.close()


async def test_one_task_per_fire_time_whoever_fires(tmp_path: Path) -> None:
    """The unique constraint, not the leader, makes a fire time register one task: a second
    process firing the same time (from a stale read) registers nothing."""
    start = 1_800_000_000_000
    clock = Clock(start)
    store, runner, _ = await _runner(tmp_path, clock)
    try:
        codec = TaskCodec(Cipher.from_secret("schedule-test"))
        owner_id = await _schedule_in(store, codec, "* * * * *", start)
        (row,) = await store.list_schedules(owner_id, limit=1, offset=0)

        def task() -> NewTask:
            queue_id = str(ULID())
            return NewTask(queue_id, start, row.next_run_at, 0, b"sealed", None)

        fire = {"fire_at": row.next_run_at, "next_run_at": row.next_run_at + 60_000, "limit": 10}
        first = await store.fire(row, task=task(), **fire)
        assert first[0] is FireOutcome.FIRED
        assert (await store.fire(row, task=task(), **fire))[0] is FireOutcome.STALE
        # A process that still sees the old fire time (its schedule row re-read after an
        # edit set the same time again) cannot register that time a second time.
        again = await store.change_schedule(
            owner_id, row.id, lambda _: ScheduleChange(next_run_at=row.next_run_at)
        )
        assert isinstance(again, ScheduleRow)
        outcome, _ = await store.fire(again, task=task(), **fire)
        assert outcome is FireOutcome.DUPLICATE
        counts = await store.active_counts()
        assert counts[owner_id] == (1, 1)
    finally:
        await runner.stop()
        await store.close()


# --- bad crons and zones never answer 500 (SPEC §15.5) ---------------------------------

NEVER_FIRES = ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"]
NOT_ZONES = ["America", "Europe/", "x" * 256, "../../etc/passwd", "zone.tab"]
BAD_VALUES = [("cron", cron) for cron in NEVER_FIRES] + [("timezone", z) for z in NOT_ZONES]


def _refused(response: httpx.Response, field: str) -> str:
    """The 400 error shape with one problem, at `field`; its message."""
    assert response.status_code == 400, (field, response.text)
    body = response.json()
    assert body["action"] == "Do not retry without fixing the problem"
    (problem,) = body["message"]
    assert problem["path"] == field, body
    return str(problem["message"])


async def test_a_cron_that_never_fires_or_a_zone_that_is_not_one_is_refused(
    client: httpx.AsyncClient, owner: Headers
) -> None:
    for field, value in BAD_VALUES:
        body = {**schedule("http://127.0.0.1:9/x"), field: value}
        message = _refused(await client.post("/v1/schedules", json=body, headers=owner), field)
        assert ("never fires" if field == "cron" else "not an IANA time zone") in message
    assert (await client.get("/v1/schedules", headers=owner)).json() == []


@pytest.mark.parametrize("paused", [False, True], ids=["active", "paused"])
async def test_a_patch_to_a_bad_cron_or_zone_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, owner: Headers, paused: bool
) -> None:
    sid = (await create(client, owner, schedule("http://127.0.0.1:9/x", "0 9 * * *")))["id"]
    if paused:
        assert (await client.patch(f"/v1/schedules/{sid}/pause", headers=owner)).is_success
    for field, value in BAD_VALUES:
        response = await client.patch(f"/v1/schedules/{sid}", json={field: value}, headers=owner)
        _refused(response, field)
    stored = (await client.get(f"/v1/schedules/{sid}", headers=owner)).json()
    assert (stored["cron"], stored["timezone"]) == ("0 9 * * *", "UTC")
    if paused:  # the resume that used to answer 500 for every call after such a patch
        resumed = await client.patch(f"/v1/schedules/{sid}/resume", headers=owner)
        assert resumed.status_code == 200, resumed.text
        assert (resumed.json()["state"], resumed.json()["cron"]) == ("ACTIVE", "0 9 * * *")


@pytest.mark.parametrize(("field", "value"), [("cron", "0 0 31 2 *"), ("timezone", "America")])
async def test_a_paused_schedule_stored_with_a_bad_cron_or_zone_resumes_with_422(
    settings: Settings, field: str, value: str
) -> None:
    """A row written before these checks existed: resume says why, never 500; a PATCH mends
    it."""
    service = open_client(settings)
    async with service as client:
        owner = await register_owner(client, "schedule-owner")
        sid = (await create(client, owner, schedule("http://127.0.0.1:9/x")))["id"]
        assert (await client.patch(f"/v1/schedules/{sid}/pause", headers=owner)).is_success
        owner_id = owner["X-Tasks-Owner-Id"]
        changed = await service.services.store.change_schedule(
            owner_id, sid, lambda _row: ScheduleChange(**{field: value})
        )
        assert isinstance(changed, ScheduleRow)
        resumed = await client.patch(f"/v1/schedules/{sid}/resume", headers=owner)
        assert resumed.status_code == 422, resumed.text
        assert resumed.json()["message"].startswith(f"The schedule's {field} ")
        fixed = await client.patch(
            f"/v1/schedules/{sid}", json={"cron": "0 * * * *", "timezone": "UTC"}, headers=owner
        )
        assert fixed.status_code == 200, fixed.text
        resumed = await client.patch(f"/v1/schedules/{sid}/resume", headers=owner)
        assert resumed.status_code == 200 and resumed.json()["state"] == "ACTIVE"
