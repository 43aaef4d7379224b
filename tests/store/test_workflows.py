"""Dependencies (SPEC §17): registered with their links, settled in the transaction of the
outcome, change or deletion that ends a task they wait for."""

from __future__ import annotations

import asyncio

from ulid import ULID

from tasks_server import lifecycle
from tasks_server.store.base import (
    InsertOutcome,
    Link,
    LinkedTask,
    NewTask,
    QueueRow,
    Recorded,
    TaskStore,
)
from tests.store.conftest import FUTURE, LIMIT
from tests.store.test_outcomes import MINUTE_MS, current, ended


def linked(
    now: int, *parents: str, ref: str | None = None, delay: int = 0, required: bool = True
) -> LinkedTask:
    queue_id = str(ULID())
    task = NewTask(queue_id, now, 0, 0, b"sealed-request", None)
    links = tuple(Link(parent, parent, required) for parent in parents)
    return LinkedTask(task, links, release_delay=delay, ref=ref)


async def insert(
    store: TaskStore, owner: str, *tasks: LinkedTask, batch: str | None = None
) -> tuple[QueueRow, ...]:
    done = await store.insert_linked(
        owner, list(tasks), plan=lifecycle.linked, limit=LIMIT, batch_id=batch, idempotency=None
    )
    assert done.outcome is InsertOutcome.INSERTED, done
    return done.rows


async def finish(store: TaskStore, *ids: str, succeeded: bool = True) -> bool:
    """Claim the (due) tasks, start them and record their ends: whether all applied."""
    now = await store.now()
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1000)
    state = "SUCCESS" if succeeded else "ERROR"
    fields = {"state": state, "outcome": state if succeeded else "FAILURE"}
    fields["status_code"] = 200 if succeeded else 500
    applied = []
    for due in (d for d in claimed if d.id in ids):
        assert await store.started(holder="a", due=due, now=now) == 1
        result = ended(1, now, **fields)
        applied.append(await store.record(holder="a", due=due, result=result, keep=10))
    return len(applied) == len(ids) and all(applied)


async def test_a_batch_waits_then_releases_its_dependents(store: TaskStore, owner: str) -> None:
    now = await store.now()
    parent = linked(now - 10, ref="p")
    child = linked(now, parent.task.queue_id, ref="c", delay=5_000)
    batch_id = str(ULID())
    rows = await insert(store, owner, parent, child, batch=batch_id)
    assert [(r.state, r.pending_deps, r.batch_id, r.ref) for r in rows] == [
        ("RUNNING", 0, batch_id, "p"),
        ("WAITING", 1, batch_id, "c"),
    ]
    assert rows[0].has_dependents and not rows[1].has_dependents
    tasks, edges = await store.batch(owner, batch_id)
    assert [t.id for t in tasks] == sorted(r.id for r in rows)
    assert edges == [(parent.task.queue_id, child.task.queue_id, True)]
    assert await store.links(child.task.queue_id) == (
        [Link(parent.task.queue_id, parent.task.queue_id, True)],
        [],
    )
    assert await finish(store, parent.task.queue_id)
    released = await current(store, child.task.queue_id)
    assert (released.state, released.pending_deps) == ("RUNNING", 0)
    start = (await current(store, parent.task.queue_id)).estimate_end_at
    assert released.estimate_execution_at == start + 5_000
    (result,) = await store.dependency_results(child.task.queue_id)
    assert (result.name, result.status_code, result.response) == (
        parent.task.queue_id,
        200,
        b"sealed-response",
    )
    assert (await store.active_counts())[owner][0] == 1


async def test_a_failed_requirement_fails_its_dependents_down_the_chain(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    parent = linked(now - 10)
    child = linked(now, parent.task.queue_id)
    grandchild = linked(now, child.task.queue_id)
    lenient = linked(now, parent.task.queue_id, required=False)
    await insert(store, owner, parent, child, grandchild, lenient)
    assert await finish(store, parent.task.queue_id, succeeded=False)
    for failed in (child, grandchild):
        row = await current(store, failed.task.queue_id)
        assert (row.state, row.status_code) == ("ERROR", 424)
    assert (await current(store, lenient.task.queue_id)).state == "RUNNING"
    due = await store.callbacks_due(10)
    assert sorted(r.id for r in due) == sorted([child.task.queue_id, grandchild.task.queue_id])
    callback = NewTask(str(ULID()), now, now, 5, b"sealed-callback", None)
    made = [(due[0], callback), (due[1], None)]
    assert await store.queue_callbacks(made) == 1
    assert await store.queue_callbacks(made) == 0  # each once
    assert await store.callbacks_due(10) == []
    assert (await current(store, due[0].id)).callback_id == callback.queue_id


async def test_revoking_or_deleting_a_requirement_fails_its_dependents(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    first, second = linked(FUTURE), linked(FUTURE)
    (row,) = await insert(store, owner, first)
    await insert(store, owner, second)
    child_one = linked(now, first.task.queue_id)
    child_two = linked(now, second.task.queue_id)
    await insert(store, owner, child_one)
    await insert(store, owner, child_two)
    revoked = await store.change(
        owner, row.id, lambda r: lifecycle.decide(r, lifecycle.Revoke(now))
    )
    assert isinstance(revoked, QueueRow) and revoked.state == "REVOKED"
    assert await store.delete(owner, second.task.queue_id)
    for child in (child_one, child_two):
        row = await current(store, child.task.queue_id)
        assert (row.state, row.status_code) == ("ERROR", 424)


async def test_unknown_and_finished_dependencies(store: TaskStore, owner: str) -> None:
    now = await store.now()
    missing = linked(now, str(ULID()))
    done = await store.insert_linked(
        owner, [missing], plan=lifecycle.linked, limit=LIMIT, batch_id=None, idempotency=None
    )
    assert (done.outcome, done.unknown) == (
        InsertOutcome.UNKNOWN_DEPENDENCY,
        missing.links[0].depends_on,
    )
    assert await store.reload(missing.task.queue_id) is None
    parent = linked(now - 10)
    await insert(store, owner, parent)
    assert await finish(store, parent.task.queue_id, succeeded=False)
    (failed,) = await insert(store, owner, linked(now, parent.task.queue_id))
    (runs,) = await insert(store, owner, linked(now, parent.task.queue_id, required=False))
    assert (failed.state, failed.status_code, runs.state) == ("ERROR", 424, "RUNNING")


async def test_a_fan_out_releases_every_child_in_the_parents_outcome(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    parent = linked(now - 10)
    children = [linked(now, parent.task.queue_id) for _ in range(LIMIT - 1)]
    await insert(store, owner, parent, *children)
    assert await finish(store, parent.task.queue_id)
    claimed = await store.claim(holder="b", window_ms=0, lease_ms=MINUTE_MS, limit=2000)
    assert len(claimed) == len(children)


async def test_a_fan_in_ending_at_once_releases_the_child_once(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    left, right = linked(now - 10), linked(now - 10)
    child = linked(now, left.task.queue_id, right.task.queue_id)
    await insert(store, owner, left, right, child)
    claimed = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    by_id = {due.id: due for due in claimed}
    for due in claimed:
        assert await store.started(holder="a", due=due, now=now) == 1
    results = await asyncio.gather(
        *(
            store.record(holder="a", due=by_id[t.task.queue_id], result=ended(1, now), keep=10)
            for t in (left, right)
        )
    )
    assert results == [Recorded.SETTLED, Recorded.SETTLED]
    row = await current(store, child.task.queue_id)
    assert (row.state, row.pending_deps) == ("RUNNING", 0)


async def test_retention_keeps_what_a_batch_or_an_active_dependent_needs(
    store: TaskStore, owner: str
) -> None:
    now = await store.now()
    parent, sibling = linked(now - 10), linked(now - 10)
    child = linked(now, parent.task.queue_id, delay=3_600_000)
    batch_id = str(ULID())
    await insert(store, owner, parent, sibling, child, batch=batch_id)
    assert await finish(store, parent.task.queue_id, sibling.task.queue_id)
    after = await store.now() + 1
    # The child is released but not run: its parent (its response) and the batch stay.
    assert (await current(store, child.task.queue_id)).state == "RUNNING"
    assert await store.purge_finished(before=after, batch=10) == 0
    assert await store.delete(owner, child.task.queue_id)
    assert await store.purge_finished(before=after, batch=10) == 2
