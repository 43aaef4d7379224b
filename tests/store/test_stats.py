"""Lists and the overview's aggregates (SPEC §19.4), on both engines: label rows follow a
task's labels, closing an attempt counts it once per minute, outcome and destination."""

from __future__ import annotations

from tasks_server.lifecycle import Change
from tasks_server.store.base import ListFilters, Listing, TaskStore
from tests.store.conftest import FUTURE, add
from tests.store.test_outcomes import ended

MINUTE_MS = 60_000
DEST = "http://127.0.0.1:9"


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
