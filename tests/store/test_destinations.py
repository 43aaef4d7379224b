"""Destinations' circuits (SPEC §18.1): counted in the outcome write, opened at the threshold,
one probe when half-open, tasks held by an open circuit, reset."""

from __future__ import annotations

from tasks_server.store.base import CircuitNote, CircuitPolicy, TaskStore
from tests.store.conftest import add, make_owner
from tests.store.test_outcomes import MINUTE_MS, ended, running

POLICY = CircuitPolicy(threshold=3, open_ms=30_000, cap_ms=600_000)


def note(destination: str, owner: str, *, failed: bool, probe: bool = False) -> CircuitNote:
    error = b"sealed-refused" if failed else None
    address = b"sealed-address" if failed else b""
    return CircuitNote(destination, owner, address, failed, error, probe, POLICY)


async def attempt(
    store: TaskStore, owner: str, destination: str, *, failed: bool, probe: bool = False
) -> int:
    """One attempt to `destination` that fails (or is answered), recorded; when it ended."""
    due, start = await running(store, owner)
    result = ended(1, start + 1, outcome="TRANSPORT" if failed else "SUCCESS")
    circuit = note(destination, owner, failed=failed, probe=probe)
    assert await store.record(holder="a", due=due, result=result, keep=10, circuit=circuit)
    return start + 1


async def test_failures_in_a_row_open_the_circuit_and_an_answer_closes_it(
    store: TaskStore, owner: str
) -> None:
    other_owner = await make_owner(store, "owner-two")
    for _ in range(POLICY.threshold - 1):
        await attempt(store, owner, "dest-a", failed=True)
    await attempt(store, other_owner, "dest-b", failed=True)
    assert await store.circuits() == {}  # counted, not open yet
    (row,) = await store.destinations(owner, limit=10, offset=0)
    assert (row.id, row.failures, row.open_until, row.address, row.last_error) == (
        "dest-a",
        2,
        0,
        b"sealed-address",
        b"sealed-refused",
    )
    opened_at = await attempt(store, owner, "dest-a", failed=True)
    assert await store.circuits() == {"dest-a": opened_at + POLICY.open_ms}
    assert await store.circuit("dest-a") == opened_at + POLICY.open_ms
    assert await store.circuit("dest-b") == 0  # counted, closed
    assert await store.circuit("dest-unknown") == 0
    assert await store.count_open_circuits() == 1
    (other,) = await store.destinations(other_owner, limit=10, offset=0)
    assert (other.id, other.failures, other.open_until) == ("dest-b", 1, 0)

    await attempt(store, owner, "dest-a", failed=False)  # one answered (an opted-out task's)
    assert await store.circuits() == {}
    (row,) = await store.destinations(owner, limit=10, offset=0)
    assert (row.failures, row.open_until, row.probe_until) == (0, 0, 0)


async def test_one_batch_of_failures_opens_once_and_a_failed_probe_doubles_the_wait(
    store: TaskStore, owner: str
) -> None:
    for _ in range(POLICY.threshold + 2):
        await attempt(store, owner, "dest-a", failed=True)
    (first,) = (await store.circuits()).values()
    (row,) = await store.destinations(owner, limit=10, offset=0)
    assert row.failures == POLICY.threshold + 2
    # Half-open once the open time passed: one probe is let through, the next waits for it.
    half_open = first + 1
    assert await store.take_probe("dest-a", now=first - 1, until=first + 9) == first
    assert await store.take_probe("dest-a", now=half_open, until=half_open + MINUTE_MS) is None
    probing_until = half_open + MINUTE_MS
    assert await store.take_probe("dest-a", now=half_open, until=half_open + 5) == probing_until
    assert await store.take_probe("dest-closed", now=half_open, until=half_open + 5) is None
    ended_at = await attempt(store, owner, "dest-a", failed=True, probe=True)
    assert await store.circuits() == {"dest-a": ended_at + 2 * POLICY.open_ms}
    (row,) = await store.destinations(owner, limit=10, offset=0)
    assert row.probe_until == 0


async def test_a_held_task_is_not_claimed_until_its_circuit_opens_or_is_reset(
    store: TaskStore, owner: str
) -> None:
    for _ in range(POLICY.threshold):
        await attempt(store, owner, "dest-a", failed=True)
    now = await store.now()
    waiting = await add(store, owner, due=now - 5)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert due.id == waiting.id
    await store.hold(holder="a", queue_id=due.id, destination_id="dest-a", until=now + MINUTE_MS)
    assert await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10) == []
    row = await store.reload(due.id)
    assert row is not None and row.estimate_execution_at == now - 5  # its place is kept
    assert row.attempts == 0  # no attempt spent

    other_owner = await make_owner(store, "owner-two")
    assert await store.reset_destination(other_owner, "dest-a", now=now) is None
    reset = await store.reset_destination(owner, "dest-a", now=now)
    assert reset is not None and (reset.failures, reset.open_until) == (0, 0)
    (again,) = await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert again.id == due.id
    assert await store.circuits() == {}


async def test_an_answer_that_closes_the_circuit_frees_its_held_tasks(
    store: TaskStore, owner: str
) -> None:
    for _ in range(POLICY.threshold):
        await attempt(store, owner, "dest-a", failed=True)
    now = await store.now()
    await add(store, owner, due=now - 5)
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    await store.hold(holder="a", queue_id=due.id, destination_id="dest-a", until=now + MINUTE_MS)
    await attempt(store, owner, "dest-a", failed=False, probe=True)
    (freed,) = await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    assert freed.id == due.id


async def test_closed_circuits_unchanged_for_long_are_purged(store: TaskStore, owner: str) -> None:
    for _ in range(POLICY.threshold):
        await attempt(store, owner, "dest-open", failed=True)
    closed_at = await attempt(store, owner, "dest-closed", failed=True)
    assert await store.purge_idle_destinations(before=closed_at, batch=10) == 0
    # Later: the closed one goes, the open one stays whatever its age.
    assert await store.purge_idle_destinations(before=closed_at + 1, batch=10) == 1
    (kept,) = await store.destinations(owner, limit=10, offset=0)
    assert kept.id == "dest-open"
