"""How attempts end: outcomes (finish, retry, stale), the attempts kept, callbacks, aborts."""

from __future__ import annotations

from ulid import ULID

from tasks_server.lifecycle import Change
from tasks_server.store.base import AttemptRow, Due, NewTask, QueueRow, Result, TaskStore
from tests.store.conftest import add
from tests.store.test_imports import task as original_task

MINUTE_MS = 60_000


async def running(store: TaskStore, owner: str, *, holder: str = "a") -> tuple[Due, int]:
    """A task claimed by `holder` with its first attempt started; the start time."""
    now = await store.now()
    await add(store, owner, due=now - 10, retry_limit=5)
    (due,) = await store.claim(holder=holder, window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder=holder, due=due, now=now) == 1
    return due, now


def ended(attempt: int, at: int, **fields: object) -> Result:
    values: dict[str, object] = {
        "attempt": attempt,
        "outcome": "SUCCESS",
        "status_code": 200,
        "error": None,
        "response": b"sealed-response",
        "finished_at": at,
        "state": "SUCCESS",
    }
    values.update(fields)
    return Result(**values)  # type: ignore[arg-type]


async def current(store: TaskStore, queue_id: str) -> QueueRow:
    row = await store.reload(queue_id)
    assert row is not None
    return row


async def test_an_ending_outcome_finishes_the_task_and_frees_it(
    store: TaskStore, owner: str
) -> None:
    due, start = await running(store, owner)
    result = ended(1, start + 50)
    assert await store.record(holder="a", due=due, result=result, keep=10)
    row = await current(store, due.id)
    assert (row.state, row.status_code, row.response, row.estimate_end_at) == (
        "SUCCESS",
        200,
        b"sealed-response",
        start + 50,
    )
    assert (row.estimate_execution_at, row.retry_count, row.version, row.attempts) == (
        due.estimate_execution_at,
        0,
        1,
        1,
    )
    assert not row.in_flight
    assert await store.attempts(due.id, limit=10, offset=0) == [
        AttemptRow(
            1, due.estimate_execution_at, start, start + 50, 200, "SUCCESS", None, result.response
        )
    ]
    assert await store.leased_versions("a") == {}
    assert await store.active_counts() == {owner: (0, 0)}


async def test_an_error_outcome_keeps_its_error_and_the_status_the_attempt_saw(
    store: TaskStore, owner: str
) -> None:
    due, start = await running(store, owner)
    result = ended(
        1,
        start + 5,
        outcome="HTTP_ERROR",
        status_code=0,
        error=b"sealed-error",
        response=None,
        state="ERROR",
        attempt_status=413,
    )
    assert await store.record(holder="a", due=due, result=result, keep=10)
    row = await current(store, due.id)
    assert (row.state, row.status_code, row.response) == ("ERROR", 0, None)
    (attempt,) = await store.attempts(due.id, limit=10, offset=0)
    assert (attempt.status_code, attempt.outcome, attempt.error) == (
        413,
        "HTTP_ERROR",
        b"sealed-error",
    )


async def test_a_retry_sets_the_task_due_again_and_counts_it(store: TaskStore, owner: str) -> None:
    due, start = await running(store, owner)
    retry = ended(
        1, start + 5, outcome="HTTP_ERROR", status_code=503, state=None, retry_at=start + 9_000
    )
    assert await store.record(holder="a", due=due, result=retry, keep=10)
    row = await current(store, due.id)
    assert (row.state, row.status_code, row.estimate_execution_at, row.estimate_end_at) == (
        "RUNNING",
        503,
        start + 9_000,
        0,
    )
    assert (row.retry_count, row.version, row.in_flight, row.attempts) == (1, 1, False, 1)
    assert await store.leased_versions("a") == {}
    (again,) = await store.claim(holder="b", window_ms=MINUTE_MS, lease_ms=MINUTE_MS, limit=1)
    assert (again.id, again.retry_count, again.version) == (due.id, 1, 1)
    assert await store.started(holder="b", due=again, now=start + 9_000) == 2
    assert await store.active_counts() == {owner: (1, 1)}


async def test_an_outcome_for_a_changed_task_is_discarded_but_closes_its_attempt(
    store: TaskStore, owner: str
) -> None:
    due, start = await running(store, owner)
    changed = await store.change(owner, due.id, lambda _r: Change(retry_limit=9))
    assert isinstance(changed, QueueRow)
    assert not await store.record(holder="a", due=due, result=ended(1, start + 5), keep=10)
    row = await current(store, due.id)
    assert (row.state, row.version, row.response, row.in_flight) == ("RUNNING", 1, None, False)
    (attempt,) = await store.attempts(due.id, limit=10, offset=0)
    assert (attempt.outcome, attempt.finished_at) == ("SUCCESS", start + 5)
    assert await store.leased_versions("a") == {due.id: ("RUNNING", 1)}


async def test_an_outcome_from_another_holder_is_discarded(store: TaskStore, owner: str) -> None:
    due, start = await running(store, owner)
    assert not await store.record(holder="b", due=due, result=ended(1, start + 5), keep=10)
    row = await current(store, due.id)
    assert (row.state, row.version) == ("RUNNING", 0)
    assert await store.leased_versions("a") == {due.id: ("RUNNING", 0)}


async def test_only_the_newest_attempts_are_kept(store: TaskStore, owner: str) -> None:
    due, start = await running(store, owner)
    for number in (1, 2, 3):
        if number > 1:
            (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
            assert await store.started(holder="a", due=due, now=start + number) == number
        retry = ended(number, start + number, state=None, retry_at=start)
        assert await store.record(holder="a", due=due, result=retry, keep=2)
    kept = await store.attempts(due.id, limit=10, offset=0)
    assert [attempt.attempt for attempt in kept] == [2, 3]
    assert (await current(store, due.id)).attempts == 3
    paged = await store.attempts(due.id, limit=1, offset=1)
    assert [attempt.attempt for attempt in paged] == [3]
    assert await store.attempts(due.id, limit=10, offset=2) == []


async def test_an_ending_outcome_inserts_its_callback_with_it(store: TaskStore, owner: str) -> None:
    due, start = await running(store, owner)
    callback = NewTask(str(ULID()), start + 1, start + 2, 3, b"sealed-callback", b"sealed-meta")
    result = ended(1, start + 1)
    assert await store.record(holder="a", due=due, result=result, keep=10, callback=callback)
    assert await store.reload(callback.queue_id) == QueueRow(
        *(callback.queue_id, owner, "RUNNING", start + 1, 0, start + 2, 0, None, 0, 3, 0),
        *(b"sealed-callback", b"sealed-meta", None, 0, None, False, due.id, None),
    )
    parent = await current(store, due.id)
    assert (parent.state, parent.callback_id) == ("SUCCESS", callback.queue_id)
    assert await store.active_counts() == {owner: (1, 1)}


async def test_a_retry_or_a_discarded_outcome_inserts_no_callback(
    store: TaskStore, owner: str
) -> None:
    due, start = await running(store, owner)
    callback = NewTask(str(ULID()), start, start, 0, b"sealed-callback", None)
    retry = ended(1, start + 1, state=None, retry_at=start)
    assert await store.record(holder="a", due=due, result=retry, keep=10, callback=callback)
    assert await store.reload(callback.queue_id) is None
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=start) == 2
    assert not await store.record(
        holder="b", due=due, result=ended(2, start), keep=10, callback=callback
    )
    assert await store.reload(callback.queue_id) is None
    assert (await current(store, due.id)).callback_id is None


async def test_attempts_are_numbered_after_the_highest_their_task_had(
    store: TaskStore, owner: str
) -> None:
    """An aborted attempt, pruned rows or an imported count: the next number is never one
    already used, and the outcome write keeps the task's count at the number it records."""
    due, start = await running(store, owner)
    await store.aborted(holder="a", queue_id=due.id, now=start + 1, started=start)
    assert await store.started(holder="a", due=due, now=start + 2) == 2
    retry = ended(2, start + 3, state=None, retry_at=start)
    assert await store.record(holder="a", due=due, result=retry, keep=1)  # keeps #2 alone
    assert (await current(store, due.id)).attempts == 2
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=start + 4) == 3
    imported = original_task(owner, estimate_execution_at=start - 10, attempts=4)
    assert await store.import_tasks([imported]) == [imported.id]
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=1)
    assert await store.started(holder="a", due=due, now=start + 5) == imported.attempts + 1


async def test_an_abort_closes_that_attempt_and_reads_the_task(
    store: TaskStore, owner: str
) -> None:
    due, start = await running(store, owner)
    unchanged = await store.aborted(holder="a", queue_id=due.id, now=start + 1, started=None)
    assert unchanged is not None and unchanged.in_flight
    for holder, started in (("b", start), ("a", start + 1)):
        row = await store.aborted(holder=holder, queue_id=due.id, now=start + 1, started=started)
        assert row is not None and row.in_flight  # not that attempt: it stays open
    row = await store.aborted(holder="a", queue_id=due.id, now=start + 4, started=start)
    assert row == await current(store, due.id)
    assert (row.state, row.version, row.in_flight) == ("RUNNING", 0, False)
    (attempt,) = await store.attempts(due.id, limit=10, offset=0)
    assert (attempt.outcome, attempt.finished_at) == ("ABORTED", start + 4)
    assert await store.leased_versions("a") == {due.id: ("RUNNING", 0)}
    assert await store.delete(owner, due.id)
    assert await store.aborted(holder="a", queue_id=due.id, now=start, started=None) is None
