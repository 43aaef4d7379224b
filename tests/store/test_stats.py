"""Lists and the overview's aggregates (SPEC §19.4), on both engines: label rows follow a
task's labels, closing an attempt counts it once per minute, outcome and destination."""

from __future__ import annotations

import pytest

from tasks_server.lifecycle import Change
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import ListFilters, Listing, TaskStore
from tests.old_schema import write_old_database
from tests.store.conftest import FUTURE, add, past
from tests.store.test_outcomes import ended

MINUTE_MS = 60_000
DEST = "http://127.0.0.1:9"
OLD_OWNER, OLD_MINUTE = "01JD0000000000000000000000", 5 * MINUTE_MS


def _listing(labels: str | None = None) -> Listing:
    return Listing(labels, "POST", f"{DEST}/x?k=***", DEST)


async def _listed(store: TaskStore, owner: str, filters: ListFilters) -> list[str]:
    rows = await store.list_tasks(
        owner, filters=filters, order="createdAt", descending=False, limit=10, offset=0
    )
    return [row.id for row in rows]


async def test_label_rows_follow_inserts_changes_and_deletes(store: TaskStore, owner: str) -> None:
    tagged = await add(store, owner, due=FUTURE, listing=_listing('{"a":"1","b":"2"}'))
    plain = await add(store, owner, due=FUTURE, listing=_listing())
    assert (tagged.labels, tagged.method, tagged.target) == (
        '{"a":"1","b":"2"}',
        "POST",
        f"{DEST}/x?k=***",
    )
    both = ListFilters(labels=(("a", "1"), ("b", "2")))
    assert await _listed(store, owner, both) == [tagged.id]
    (row,) = await store.list_tasks(owner, order="createdAt", descending=False, limit=1, offset=0)
    assert (row.method, row.target, row.labels) == ("POST", f"{DEST}/x?k=***", tagged.labels)

    await store.change(owner, plain.id, lambda _row: Change(listing=_listing('{"a":"1"}')))
    assert await _listed(store, owner, ListFilters(labels=(("a", "1"),))) == [tagged.id, plain.id]
    await store.change(owner, tagged.id, lambda _row: Change(listing=_listing()))
    assert await _listed(store, owner, ListFilters(labels=(("a", "1"),))) == [plain.id]
    assert await store.delete(owner, plain.id)
    assert await _listed(store, owner, ListFilters(labels=(("a", "1"),))) == []


async def test_closed_attempts_are_counted_by_minute_outcome_and_destination(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    for _ in range(3):
        await add(store, owner, due=now - 10, listing=_listing())
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=3)
    assert len(claimed) == 3
    for due in claimed:
        assert await store.started(holder="a", due=due, now=now) == 1
    outcomes = [
        ended(1, now + 5),
        ended(1, now + 5, outcome="FAILURE", status_code=500, state="ERROR"),
        ended(1, now + 5, outcome="TRANSPORT", status_code=0, state="ERROR"),
    ]
    for due, result in zip(claimed, outcomes, strict=True):
        assert await store.record(holder="a", due=due, result=result, keep=10)

    stats = await store.stats(owner, since=0, top=5)
    minute = (now + 5) // MINUTE_MS * MINUTE_MS
    assert sorted(stats.attempts) == [
        (minute, "FAILURE", 1),
        (minute, "SUCCESS", 1),
        (minute, "TRANSPORT", 1),
    ]
    assert sum(stats.lateness.values()) == 3
    assert stats.failures == [(DEST, 2)]
    assert stats.states == {"SUCCESS": 1, "ERROR": 2}
    failed = ListFilters(outcome="FAILURE")
    assert await _listed(store, owner, failed) == [claimed[1].id]
    assert await _listed(store, owner, ListFilters(status_code=500)) == [claimed[1].id]
    assert (await store.stats(owner, since=minute + MINUTE_MS, top=5)).attempts == []

    assert await store.purge_stats(before=minute) == 0
    assert await store.purge_stats(before=minute + MINUTE_MS) > 0
    assert (await store.stats(owner, since=0, top=5)).attempts == []


async def test_attempts_closed_without_an_answer_are_counted_too(
    store: TaskStore, owner: str
) -> None:
    """An abort, an abandon, a stopping holder and a claim of a dead holder's task close
    attempts as the outcome write does: each is counted once, with its lateness."""
    now = await store.now()
    for _ in range(4):
        await add(store, owner, due=now - 10, listing=_listing())
    aborted, abandoned, stopped = [
        await _started(store, "a", now, lease_ms=MINUTE_MS) for _ in range(3)
    ]
    dead = await _started(store, "dead", now, lease_ms=1)
    await store.aborted(holder="a", queue_id=aborted, now=now + 1, started=now)
    await store.abandon(holder="a", queue_id=abandoned, now=now + 1)
    await store.release_holder("a", now=now + 1)
    await past(store, await store.now() + 1)  # the dead holder's 1 ms lease has ended
    claimed = await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert {due.id for due in claimed} == {aborted, abandoned, stopped, dead}
    stats = await store.stats(owner, since=0, top=5)
    by_outcome: dict[str, int] = {}
    for _minute, outcome, n in stats.attempts:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
    assert by_outcome == {"ABORTED": 1, "INTERRUPTED": 3}
    assert sum(stats.lateness.values()) == 4
    assert stats.failures == []


async def _started(store: TaskStore, holder: str, now: int, *, lease_ms: int) -> str:
    (due,) = await store.claim(holder=holder, window_ms=0, lease_ms=lease_ms, limit=1)
    assert await store.started(holder=holder, due=due, now=now) == 1
    return due.id


# Aggregates as schema version 10 kept them, in its three tables, two slots of a minute.
_COUNTED_BY_TRIGGERS = [
    (statement, (OLD_OWNER, OLD_MINUTE, slot))
    for statement in (
        "INSERT INTO stats_attempts VALUES ($1, $2, 'SUCCESS', $3, 2)",
        "INSERT INTO stats_lateness VALUES ($1, $2, 4, $3, 2)",
        "INSERT INTO stats_failures VALUES ($1, $2, 'http://127.0.0.1:9', $3, 1)",
    )
    for slot in (3, 7)
]


@pytest.mark.fresh_database
async def test_aggregates_counted_before_version_11_are_read_after_it(
    settings: Settings,
) -> None:
    """Migration 11 moves the triggers' three tables into one: nothing counted is lost."""
    await write_old_database(settings, sqlite=10, postgres=10, writes=_COUNTED_BY_TRIGGERS)
    store = build_store(settings)
    await store.open()
    try:
        stats = await store.stats(OLD_OWNER, since=0, top=5)
    finally:
        await store.close()
    assert stats.attempts == [(OLD_MINUTE, "SUCCESS", 4)]
    assert stats.lateness == {4: 4}
    assert stats.failures == [(DEST, 2)]
