"""Retention (finished tasks, idle flow keys), single-runner roles, and the counts metrics and
checks read."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tasks_server.lifecycle import Change
from tasks_server.store.base import Flow, Leader, Overdue, QueueRow, Result, TaskStore
from tests.store.conftest import FUTURE, add, make_owner, until

MINUTE_MS = 60_000


async def ended_at(store: TaskStore, owner: str, state: str, end: int) -> QueueRow:
    """A task a client ended (revoked, or as a finished one), at `end`."""
    row = await add(store, owner, due=FUTURE)
    changed = await store.change(owner, row.id, lambda _r: Change(state=state, estimate_end_at=end))
    assert isinstance(changed, QueueRow)
    return changed


async def test_finished_tasks_are_purged_once_old_enough_a_batch_at_a_time(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    run = await add(store, owner, due=now - 1)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=now) == 1
    result = Result(1, "SUCCESS", 200, None, None, 500, "SUCCESS")
    assert await store.record(holder="a", due=due, result=result, keep=10)
    old = [await ended_at(store, owner, state, 100) for state in ("REVOKED", "ERROR")]
    recent = await ended_at(store, owner, "SUCCESS", 5_000)
    active = [await add(store, owner, due=0) for _ in range(2)]
    paused = await store.change(owner, active[1].id, lambda _r: Change(state="PAUSED"))
    assert isinstance(paused, QueueRow)
    assert await store.purge_finished(before=1_000, batch=2) == 2
    assert await store.purge_finished(before=1_000, batch=2) == 1
    assert await store.purge_finished(before=1_000, batch=2) == 0
    for row in (run, *old):
        assert await store.reload(row.id) is None
    assert await store.attempts(run.id, limit=10, offset=0) == []
    assert await store.reload(recent.id) is not None
    assert await store.purge_finished(before=5_001, batch=10) == 1
    assert await store.count_by_state() == {"RUNNING": 1, "PAUSED": 1}
    assert await store.active_counts() == {owner: (2, 2)}


async def test_idle_flow_keys_are_purged_once_their_next_start_is_past(
    store: TaskStore, owner: str
) -> None:
    """A claim makes a key's row; it keeps the key's next start (none for a key without a
    rate), and goes once that is before `before`."""
    due = await store.now() + MINUTE_MS
    await add(store, owner, due=due, flow=Flow("paced", None, 0.1))
    for key in ("first", "second"):
        await add(store, owner, due=due, flow=Flow(key, 1, None))
    claimed = await store.claim(holder="a", window_ms=2 * MINUTE_MS, lease_ms=1_000, limit=10)
    assert len(claimed) == 3
    assert await store.purge_idle_flows(before=due + 10_000, batch=1) == 1
    assert await store.purge_idle_flows(before=due + 10_000, batch=10) == 1
    assert await store.purge_idle_flows(before=due + 10_000, batch=10) == 0
    assert await store.purge_idle_flows(before=due + 10_001, batch=10) == 1
    assert await store.purge_idle_flows(before=due + 10_001, batch=10) == 0


@contextlib.asynccontextmanager
async def released(leaders: list[Leader]) -> AsyncIterator[list[Leader]]:
    try:
        yield leaders
    finally:
        for leader in leaders:
            leader.release()


async def test_a_role_is_held_by_one_taker_until_released(store: TaskStore) -> None:
    async with released([]) as held:
        retention = await store.leader("retention")
        assert retention is not None
        held.append(retention)
        assert await retention.held()
        assert await store.leader("retention") is None
        backups = await store.leader("backups")
        assert backups is not None
        held.append(backups)
        retention.release()
        assert not await retention.held()
        again = await until(lambda: store.leader("retention"), "the role freed")
        held.append(again)
        assert await again.held() and await backups.held()


async def test_tasks_are_counted_by_state_across_owners(store: TaskStore, owner: str) -> None:
    assert await store.count_by_state() == {}
    other = await make_owner(store, "owner-two")
    for owner_id in (owner, other):
        await add(store, owner_id, due=FUTURE)
    await ended_at(store, other, "PAUSED", 0)
    await ended_at(store, owner, "SUCCESS", 1)
    assert await store.count_by_state() == {"RUNNING": 2, "PAUSED": 1, "SUCCESS": 1}


async def test_overdue_tasks_are_the_late_running_ones_not_started_and_the_oldest_is_known(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    await add(store, owner, due=now - 10_000)
    started = await add(store, owner, due=now - 20_000)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert due.id == started.id
    assert await store.started(holder="a", due=due, now=now) == 1
    await add(store, owner, due=now - 100)
    paused = await add(store, owner, due=now - 10_000)
    assert isinstance(
        await store.change(owner, paused.id, lambda _r: Change(state="PAUSED")), QueueRow
    )
    await add(store, owner, due=now + MINUTE_MS)
    assert await store.overdue(now=now, late_by=1_000) == Overdue(1, now - 10_000)
    assert await store.overdue(now=now, late_by=50) == Overdue(2, now - 10_000)
    assert await store.overdue(now=now, late_by=20_000) == Overdue(0, None)


async def test_the_kept_active_count_agrees_with_a_recount(store: TaskStore, owner: str) -> None:
    """Every kind of change moves the kept counter with the rows: inserts, client changes,
    outcomes, callbacks, deletes, fires."""
    other = await make_owner(store, "owner-two")
    assert await store.active_counts() == {owner: (0, 0), other: (0, 0)}
    now = await store.now()
    rows = [await add(store, owner, due=now - 1) for _ in range(3)]
    await add(store, other, due=FUTURE)
    await store.change(owner, rows[0].id, lambda _r: Change(state="PAUSED"))
    await store.change(owner, rows[1].id, lambda _r: Change(state="REVOKED"))
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=now) == 1
    result = Result(1, "SUCCESS", 200, None, None, now, "SUCCESS")
    assert await store.record(holder="a", due=due, result=result, keep=10)
    assert await store.delete(owner, rows[0].id)
    assert await store.active_counts() == {owner: (0, 0), other: (1, 1)}
