"""The scheduler's leases: claims (due times, holders, flow control), attempt starts, renewals
and releases."""

from __future__ import annotations

import asyncio

from ulid import ULID

from tasks_server.lifecycle import Change
from tasks_server.store.base import AttemptRow, Due, Flow, QueueRow, TaskStore
from tasks_server.timeutil import now_ms
from tests.store.conftest import add, make_owner, past

MINUTE_MS = 60_000


def ids(claimed: list[Due]) -> set[str]:
    return {due.id for due in claimed}


async def test_the_stores_clock_never_reads_ahead_of_the_wall_clock(store: TaskStore) -> None:
    """Due times and leases are compared on it, and a request must not leave before its time
    (the database runs on this machine: one wall clock)."""
    for _ in range(100):
        assert await store.now() <= now_ms()


async def test_a_claim_leases_the_earliest_due_tasks_up_to_its_limit(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    paused = await add(store, owner, due=now - 5_000)
    assert isinstance(
        await store.change(owner, paused.id, lambda _r: Change(state="PAUSED")), QueueRow
    )
    first, third, second = [await add(store, owner, due=now - ago) for ago in (3_000, 1_000, 2_000)]
    later = await add(store, owner, due=now + 10 * MINUTE_MS)
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=2)
    assert ids(claimed) == {first.id, second.id}
    assert ids(await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {
        third.id
    }
    window = 11 * MINUTE_MS  # what comes due within the window is claimed ahead
    assert ids(await store.claim(holder="a", window_ms=window, lease_ms=MINUTE_MS, limit=10)) == {
        later.id
    }
    assert set(await store.leased_versions("a")) == {first.id, second.id, third.id, later.id}


async def test_a_claimed_task_is_due_as_registered(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 1, retry_limit=4)
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert claimed == [Due(row.id, owner, now - 1, 0, 4, 0, row.request)]


async def test_a_lease_passes_to_another_holder_only_once_expired(
    store: TaskStore, owner: str
) -> None:
    row = await add(store, owner, due=await store.now() - 1)
    assert ids(await store.claim(holder="a", window_ms=0, lease_ms=200, limit=10)) == {row.id}
    claimed_by = await store.now()
    assert await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    assert await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    await past(store, claimed_by + 200)
    assert ids(await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {row.id}
    assert await store.leased_versions("a") == {}
    assert await store.leased_versions("b") == {row.id: ("RUNNING", 0)}


async def test_an_expired_lease_with_nothing_open_is_claimed_again_by_its_holder(
    store: TaskStore, owner: str
) -> None:
    row = await add(store, owner, due=await store.now() - 1)
    await store.claim(holder="a", window_ms=0, lease_ms=1, limit=10)
    await past(store, await store.now() + 1)
    assert ids(await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {row.id}


async def test_a_holder_never_claims_a_task_whose_attempt_it_still_runs(
    store: TaskStore, owner: str
) -> None:
    """After its lease expired (a forward clock step, a slow renewal) the holder's own open
    attempt keeps the task from it; another holder takes it and ends that attempt."""
    row = await add(store, owner, due=await store.now() - 1)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=1, limit=10)
    start = await store.now()
    assert await store.started(holder="a", due=due, now=start) == 1
    await past(store, start + 1)
    assert await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    assert ids(await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {row.id}
    (attempt,) = await store.attempts(row.id, limit=10, offset=0)
    assert attempt.outcome == "INTERRUPTED" and attempt.finished_at >= start


# --- flow control ---------------------------------------------------------------------------


async def test_a_flow_keys_parallelism_caps_its_leases(store: TaskStore, owner: str) -> None:
    now = await store.now()
    flow = Flow("key-digest", 1, None)
    rows = [await add(store, owner, due=now - ago, flow=flow) for ago in (3_000, 2_000, 1_000)]
    (first,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert (first.id, first.flow_key, first.start_at, first.spacing_ms) == (
        rows[0].id,
        "key-digest",
        0,
        0,
    )
    assert await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    await store.release("a", first.id)
    assert ids(await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {
        rows[0].id
    }


async def test_a_flow_keys_rate_spaces_the_starts_it_hands_out(
    store: TaskStore, owner: str
) -> None:
    """One start every 10 s: a claim leases only the tasks whose start falls within its window,
    and the next claim goes on from the key's next free start."""
    now = await store.now()
    start = now + MINUTE_MS
    flow = Flow("paced", None, 0.1)
    rows = [await add(store, owner, due=start, flow=flow) for _ in range(4)]
    in_order = sorted(row.id for row in rows)
    claimed = await store.claim(holder="a", window_ms=85_000, lease_ms=MINUTE_MS, limit=10)
    assert [(due.id, due.start_at, due.spacing_ms) for due in claimed] == [
        (in_order[n], start + n * 10_000, 10_000) for n in range(3)
    ]
    (last,) = await store.claim(holder="b", window_ms=2 * MINUTE_MS, lease_ms=1_000, limit=10)
    assert (last.id, last.start_at) == (in_order[3], start + 30_000)


async def test_a_changed_flow_is_the_one_claims_follow(store: TaskStore, owner: str) -> None:
    row = await add(store, owner, due=await store.now() - 1, flow=Flow("old", 1, None))
    for flow in (Flow("new", None, 2.0), None):
        changed = await store.change(owner, row.id, lambda _r, f=flow: Change(flow=f))
        assert isinstance(changed, QueueRow)
        (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
        expected = (None, 0) if flow is None else ("new", 500)
        assert (due.flow_key, due.spacing_ms) == expected
        await store.release("a", row.id)


async def test_flow_keys_of_two_owners_are_apart(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    now = await store.now()
    flow = Flow("same-digest", 1, None)
    mine, theirs = [await add(store, o, due=now - 1, flow=flow) for o in (owner, other)]
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert ids(claimed) == {mine.id, theirs.id}


async def test_a_claim_cut_short_takes_the_earliest_flow_keys_first(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    early = [await add(store, owner, due=now - 3_000, flow=Flow("b-key", None, None))]
    early.append(await add(store, owner, due=now - 2_900, flow=Flow("b-key", None, None)))
    for _ in range(2):
        await add(store, owner, due=now - 1_000, flow=Flow("a-key", None, None))
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=2)
    assert ids(claimed) == {row.id for row in early}


# --- starts ---------------------------------------------------------------------------------


async def test_a_start_opens_the_attempt_row_the_task_is_then_in_flight(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 10)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=now + 5) == 1
    assert await store.attempts(row.id, limit=10, offset=0) == [
        AttemptRow(1, now - 10, now + 5, 0, 0, "IN_FLIGHT", None, None)
    ]
    current = await store.reload(row.id)
    assert current is not None
    # The task row is not written: its count is the last attempt an outcome recorded.
    assert (current.attempts, current.in_flight, current.version) == (0, True, 0)


async def test_no_attempt_starts_for_a_changed_or_lost_task(store: TaskStore, owner: str) -> None:
    now = await store.now()
    changed, released = [await add(store, owner, due=now - 1) for _ in range(2)]
    claimed = {
        due.id: due
        for due in await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    }
    assert isinstance(
        await store.change(owner, changed.id, lambda _r: Change(retry_limit=2)), QueueRow
    )
    assert await store.started(holder="a", due=claimed[changed.id], now=now) is None
    assert await store.started(holder="b", due=claimed[released.id], now=now) is None
    await store.release("a", released.id)
    assert await store.started(holder="a", due=claimed[released.id], now=now) is None
    for queue_id in (changed.id, released.id):
        assert await store.attempts(queue_id, limit=10, offset=0) == []


async def test_starts_made_at_once_each_open_their_own_attempt(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    rows = [await add(store, owner, due=now - 1) for _ in range(12)]
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=20)
    stale = claimed[3]
    assert isinstance(
        await store.change(owner, stale.id, lambda _r: Change(retry_limit=1)), QueueRow
    )
    numbers = await asyncio.gather(
        *(store.started(holder="a", due=due, now=now) for due in claimed)
    )
    assert numbers == [None if due is stale else 1 for due in claimed]
    for row in rows:
        attempts = await store.attempts(row.id, limit=10, offset=0)
        assert [attempt.attempt for attempt in attempts] == ([] if row.id == stale.id else [1])


async def test_a_second_start_of_one_claim_is_numbered_as_it_is_stored(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 1)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    first = await store.started(holder="a", due=due, now=now)
    second = await store.started(holder="a", due=due, now=now + 1)
    stored = [attempt.attempt for attempt in await store.attempts(row.id, limit=10, offset=0)]
    assert (first, second, stored) == (1, 2, [1, 2])


# --- renewals and releases ------------------------------------------------------------------


async def test_renew_extends_exactly_the_listed_leases_of_their_holder(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    kept, lapsed = [await add(store, owner, due=now - 1) for _ in range(2)]
    await store.claim(holder="a", window_ms=0, lease_ms=1, limit=10)
    claimed_by = await store.now()
    await store.renew("a", [kept.id], MINUTE_MS)
    await store.renew("b", [lapsed.id], MINUTE_MS)  # not b's: nothing changes
    await past(store, claimed_by + 1)
    assert ids(await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {
        lapsed.id
    }
    await store.renew("a", [kept.id, lapsed.id], MINUTE_MS)  # lapsed is b's now
    assert set(await store.leased_versions("a")) == {kept.id}
    assert set(await store.leased_versions("b")) == {lapsed.id}


async def test_a_release_frees_its_holders_lease_only(store: TaskStore, owner: str) -> None:
    row = await add(store, owner, due=await store.now() - 1)
    await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    await store.release("b", row.id)
    assert await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    await store.release("a", row.id)
    assert ids(await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {row.id}


async def test_a_stopping_holder_interrupts_its_attempts_and_frees_its_leases(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    mine, theirs = [await add(store, owner, due=now - ago) for ago in (2, 1)]
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert due.id == mine.id
    (other,) = await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    await store.started(holder="a", due=due, now=now)
    await store.started(holder="b", due=other, now=now)
    await store.release_holder("a", now=now + 7)
    (interrupted,) = await store.attempts(mine.id, limit=10, offset=0)
    assert (interrupted.outcome, interrupted.finished_at) == ("INTERRUPTED", now + 7)
    (running,) = await store.attempts(theirs.id, limit=10, offset=0)
    assert (running.outcome, running.finished_at) == ("IN_FLIGHT", 0)
    assert await store.leased_versions("a") == {}
    assert await store.leased_versions("b") == {theirs.id: ("RUNNING", 0)}
    assert ids(await store.claim(holder="c", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {
        mine.id
    }


async def test_release_all_frees_every_lease(store: TaskStore, owner: str) -> None:
    """A process alone on its database starts: every lease is stale; the attempts left open
    end when their tasks are claimed again."""
    now = await store.now()
    rows = [await add(store, owner, due=now - 1) for _ in range(2)]
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    await store.started(holder="a", due=due, now=now)
    await store.release_all()
    assert await store.leased_versions("a") == await store.leased_versions("b") == {}
    claimed = await store.claim(holder="c", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert ids(claimed) == {row.id for row in rows}
    (attempt,) = await store.attempts(due.id, limit=10, offset=0)
    assert attempt.outcome == "INTERRUPTED"


async def test_leased_versions_follow_client_changes(store: TaskStore, owner: str) -> None:
    row = await add(store, owner, due=await store.now() - 1)
    await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert isinstance(
        await store.change(owner, row.id, lambda _r: Change(state="PAUSED")), QueueRow
    )
    assert await store.leased_versions("a") == {row.id: ("PAUSED", 1)}
    assert await store.delete(owner, row.id)
    assert await store.leased_versions("a") == {}


async def test_abandon_interrupts_the_holders_attempt_and_frees_the_task(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 1)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    await store.started(holder="a", due=due, now=now)
    await store.abandon(holder="b", queue_id=row.id, now=now + 1)  # not b's: nothing changes
    assert set(await store.leased_versions("a")) == {row.id}
    await store.abandon(holder="a", queue_id=row.id, now=now + 3)
    (attempt,) = await store.attempts(row.id, limit=10, offset=0)
    assert (attempt.outcome, attempt.finished_at) == ("INTERRUPTED", now + 3)
    assert ids(await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)) == {row.id}
    await store.abandon(holder="a", queue_id=str(ULID()), now=now)  # gone: nothing to do
