"""A bulk load: one owner's tasks in one transaction, all or none under the owner's limit
(the benchmark seeds its databases with it)."""

from __future__ import annotations

from dataclasses import replace

from ulid import ULID

from tasks_server.store.base import Flow, InsertOutcome, NewTask, QueueRow, TaskStore


def task(due: int) -> NewTask:
    return NewTask(str(ULID()), 1, due, retry_limit=2, request=b"sealed", metadata=None)


async def running(store: TaskStore, owner: str) -> int:
    return (await store.ids_in_state(owner, "RUNNING", 0))[1]


async def test_every_task_is_inserted_running_and_counted_up_to_the_limit(
    store: TaskStore, owner: str
) -> None:
    tasks = [task(due=1_000 + n) for n in range(3)]

    assert await store.insert_many(owner, tasks, limit=3) is InsertOutcome.INSERTED

    for new in tasks:
        expected = QueueRow(
            *(new.queue_id, owner, "RUNNING", 1, 0, new.due, 0, None, 0, 2, 0),
            *(b"sealed", None, None, 0, None, False),
        )
        assert await store.get(owner, new.queue_id) == expected
    record = await store.get_owner(owner, "owner-one")
    assert record is not None and record.tasks_in_queue == 3


async def test_past_the_limit_no_task_is_inserted(store: TaskStore, owner: str) -> None:
    assert await store.insert_many(owner, [task(due=0)], limit=2) is InsertOutcome.INSERTED
    more = [task(due=0), task(due=0)]

    assert await store.insert_many(owner, more, limit=2) is InsertOutcome.LIMIT_REACHED

    assert [await store.get(owner, new.queue_id) for new in more] == [None, None]
    assert await running(store, owner) == 1


async def test_an_unknown_owner_gets_no_task(store: TaskStore, owner: str) -> None:
    assert await store.insert_many(str(ULID()), [task(due=0)], limit=9) is InsertOutcome.NO_OWNER
    assert await running(store, owner) == 0


async def test_an_empty_batch_inserts_nothing(store: TaskStore, owner: str) -> None:
    assert await store.insert_many(owner, [], limit=0) is InsertOutcome.INSERTED
    assert await running(store, owner) == 0


async def test_a_tasks_flow_control_is_kept(store: TaskStore, owner: str) -> None:
    new = replace(task(due=0), flow=Flow("key-digest", parallelism=2, rate=1.5))
    assert await store.insert_many(owner, [new], limit=9) is InsertOutcome.INSERTED

    (claimed,) = await store.claim(holder="node", window_ms=1_000, lease_ms=60_000, limit=10)
    assert (claimed.id, claimed.flow_key) == (new.queue_id, "key-digest")
