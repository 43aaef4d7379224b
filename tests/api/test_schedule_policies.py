"""Schedules' missed runs and overlap (SPEC §18.3), fired on an injected clock: `missedRuns`
"skip" and "all" (within `catchUpWindow`, across a DST change too), `overlap: "skip"`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from ulid import ULID

from tasks_server.codec import TaskCodec
from tasks_server.cron import Cron
from tasks_server.crypto import Cipher
from tasks_server.lifecycle import Change
from tasks_server.schedules import REQUEST, ScheduleRunner
from tasks_server.store.base import QueueSummaryRow
from tasks_server.store.sqlite import SqliteStore
from tests.api.test_schedules import Clock, _runner, schedule
from tests.conftest import register_owner

START = 1_800_000_000_000  # a whole hour, UTC
HOUR_MS = 3_600_000
CODEC = TaskCodec(Cipher.from_secret("schedule-test"))  # as `_runner`'s


async def scheduled(
    store: SqliteStore, cron: str, now: int, timezone: str = "UTC", **policy: Any
) -> tuple[str, str]:
    """A schedule of a new owner with these `missedRuns`/`catchUpWindow`/`overlap` fields;
    (owner id, schedule id)."""
    owner_id, schedule_id = str(ULID()), str(ULID())
    await store.create_owner(owner_id=owner_id, name="clocked", key_digest=b"-", created_at=0)
    document = {
        "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
        "config": {},
        **policy,
    }
    await store.create_schedule(
        schedule_id=schedule_id,
        owner_id=owner_id,
        cron=cron,
        timezone=timezone,
        created_at=now,
        next_run_at=Cron(cron, timezone).next_after(now),
        request=CODEC.seal_json(document, schedule_id, REQUEST),
        metadata=None,
        limit=10,
    )
    return owner_id, schedule_id


async def tasks_of(store: SqliteStore, owner_id: str) -> list[QueueSummaryRow]:
    return await store.list_tasks(
        owner_id,
        order="createdAt",
        descending=False,
        limit=1000,
        offset=0,
    )


async def next_run(store: SqliteStore, owner_id: str) -> int:
    (row,) = await store.list_schedules(owner_id, limit=1, offset=0)
    return row.next_run_at


async def clocked(tmp_path: Path) -> tuple[SqliteStore, ScheduleRunner, Clock]:
    clock = Clock(START)
    store, runner, _ = await _runner(tmp_path, clock)
    return store, runner, clock


async def test_missed_runs_skip_registers_nothing_and_goes_on_from_now(tmp_path: Path) -> None:
    store, runner, clock = await clocked(tmp_path)
    try:
        owner_id, _ = await scheduled(store, "*/5 * * * *", START, missedRuns="skip")
        clock.at = START + 3 * HOUR_MS + 17_000  # three hours down
        assert await runner.run_once() == 0
        assert await tasks_of(store, owner_id) == []
        assert await next_run(store, owner_id) == START + 3 * HOUR_MS + 300_000
    finally:
        await runner.stop()
        await store.close()


async def test_missed_runs_all_fires_each_time_within_the_window(tmp_path: Path) -> None:
    store, runner, clock = await clocked(tmp_path)
    try:
        owner_id, schedule_id = await scheduled(
            store, "*/5 * * * *", START, missedRuns="all", catchUpWindow=HOUR_MS // 2
        )
        clock.at = START + 3 * HOUR_MS + 17_000
        # The last half hour's fire times: 2:35, 2:40 … 3:00, each a task due now.
        assert await runner.run_once() == 6
        tasks = await tasks_of(store, owner_id)
        assert [t.estimate_execution_at for t in tasks] == [clock.at] * 6
        assert {t.schedule_id for t in tasks} == {schedule_id}
        assert await next_run(store, owner_id) == START + 3 * HOUR_MS + 300_000
        assert await runner.run_once() == 0  # caught up: nothing fires twice
    finally:
        await runner.stop()
        await store.close()


async def test_missed_runs_all_across_a_dst_change_fires_each_local_time_once(
    tmp_path: Path,
) -> None:
    """Paris falls back at 03:00 CEST on 2027-10-31: 02:00–03:00 happens twice; an hourly
    schedule down over it catches up each of its fire times once, as Cron lists them."""
    cron, zone = "0 * * * *", "Europe/Paris"
    before = 1_824_933_600_000  # 2027-10-30 22:00 UTC, midnight in Paris
    store, runner, clock = await clocked(tmp_path)
    clock.at = before
    try:
        owner_id, _ = await scheduled(
            store, cron, before, zone, missedRuns="all", catchUpWindow=24 * HOUR_MS
        )
        clock.at = before + 6 * HOUR_MS + HOUR_MS // 2
        expected, at = [], before
        while (at := Cron(cron, zone).next_after(at)) < clock.at:
            expected.append(at)
        assert len(expected) == 5  # six hours passed on the hour, the twice-lived 02:00 once
        assert await runner.run_once() == len(expected)
        assert len(await tasks_of(store, owner_id)) == len(expected)
    finally:
        await runner.stop()
        await store.close()


async def test_overlap_skip_fires_nothing_while_the_last_task_is_unfinished(
    tmp_path: Path,
) -> None:
    store, runner, clock = await clocked(tmp_path)
    try:
        owner_id, _ = await scheduled(store, "* * * * *", START, overlap="skip")
        clock.at = START + 60_000
        assert await runner.run_once() == 1
        (first,) = await tasks_of(store, owner_id)
        clock.at = START + 120_000  # the first task still RUNNING: this fire time is skipped
        assert await runner.run_once() == 0
        assert await next_run(store, owner_id) == START + 180_000
        revoked = await store.change(owner_id, first.id, lambda _: Change(state="REVOKED"))
        assert revoked is not None
        clock.at = START + 180_000
        assert await runner.run_once() == 1
        assert len(await tasks_of(store, owner_id)) == 2
    finally:
        await runner.stop()
        await store.close()


@pytest.mark.parametrize(
    "policy",
    [
        {"missedRuns": "some"},
        {"missedRuns": 1},
        {"catchUpWindow": 0},
        {"catchUpWindow": "1h"},
        {"overlap": "maybe"},
    ],
)
async def test_bad_policies_are_refused(client: httpx.AsyncClient, policy: dict[str, Any]) -> None:
    owner = await register_owner(client)
    response = await client.post(
        "/v1/schedules", json=schedule("http://127.0.0.1:9/x", **policy), headers=owner
    )
    assert response.status_code == 400, response.text
    assert next(iter(policy)) in response.text


async def test_policies_are_stored_and_patchable(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    body = schedule("http://127.0.0.1:9/x", missedRuns="all", catchUpWindow=600_000)
    created = await client.post("/v1/schedules", json=body, headers=owner)
    assert created.status_code == 201, created.text
    url = f"/v1/schedules/{created.json()['id']}"
    patched = await client.patch(url, json={"overlap": "skip"}, headers=owner)
    assert patched.status_code == 200, patched.text
    config = (await client.get(f"{url}/config", headers=owner)).json()
    assert (config["missedRuns"], config["catchUpWindow"], config["overlap"]) == (
        "all",
        600_000,
        "skip",
    )
