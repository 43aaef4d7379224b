"""Tasks as clients see them: registration (limits, pre-claims, idempotency), reads, lists,
compare-and-set changes and deletes."""

from __future__ import annotations

from typing import Any

import pytest
from ulid import ULID

from tasks_server.lifecycle import Change
from tasks_server.store.base import (
    Idempotency,
    InsertOutcome,
    ListFilters,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    TaskStore,
    limit_message,
)
from tests.store.conftest import FUTURE, add, insert, make_owner

DAY_MS = 86_400_000


async def test_a_registered_task_is_running_at_version_zero(store: TaskStore, owner: str) -> None:
    now = await store.now()
    queue_id = str(ULID())
    outcome, row = await store.insert(
        queue_id=queue_id,
        owner_id=owner,
        created_at=now,
        due=now + DAY_MS,
        retry_limit=3,
        request=b"sealed-request",
        metadata=b"sealed-metadata",
        limit=10,
        lease=None,
    )
    expected = QueueRow(
        *(queue_id, owner, "RUNNING", now, 0, now + DAY_MS, 0, None, 0, 3, 0),
        *(b"sealed-request", b"sealed-metadata", None, 0, None, False),
    )
    assert (outcome, row) == (InsertOutcome.INSERTED, expected)
    assert await store.get(owner, queue_id) == expected
    assert await store.reload(queue_id) == expected


async def test_the_limit_counts_active_tasks_only(store: TaskStore, owner: str) -> None:
    now = await store.now()
    first = await add(store, owner, due=now + DAY_MS, limit=2)
    await add(store, owner, due=now + DAY_MS, limit=2)
    assert await insert(store, owner, due=now, limit=2) == (InsertOutcome.LIMIT_REACHED, None)
    paused = await store.change(owner, first.id, lambda _row: Change(state="PAUSED"))
    assert isinstance(paused, QueueRow)
    assert (await insert(store, owner, due=now, limit=2))[0] is InsertOutcome.LIMIT_REACHED
    assert isinstance(
        await store.change(owner, first.id, lambda _row: Change(state="REVOKED")), QueueRow
    )
    assert (await insert(store, owner, due=now, limit=2))[0] is InsertOutcome.INSERTED
    assert await store.active_counts() == {owner: (2, 2)}


async def test_an_unknown_owner_registers_nothing(store: TaskStore, owner: str) -> None:
    unknown = str(ULID())
    assert await insert(store, unknown, due=0) == (InsertOutcome.NO_OWNER, None)
    once = Idempotency("key", b"body", 1, 60_000)
    assert await insert(store, unknown, due=0, idempotency=once) == (InsertOutcome.NO_OWNER, None)
    assert await store.count_by_state() == {}


async def test_a_pre_claimed_task_is_its_holders(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 1_000, lease=("registrar", now + 60_000))
    assert await store.claim(holder="other", window_ms=0, lease_ms=60_000, limit=10) == []
    assert await store.leased_versions("registrar") == {row.id: ("RUNNING", 0)}
    assert await store.leased_versions("other") == {}


# --- idempotency ----------------------------------------------------------------------------


async def test_a_repeated_key_replays_the_task_as_it_is_now(store: TaskStore, owner: str) -> None:
    once = Idempotency("key-digest", b"body-digest", 1_000, 60_000)
    first = await add(store, owner, due=FUTURE, idempotency=once)
    changed = await store.change(owner, first.id, lambda _row: Change(retry_limit=7))
    assert isinstance(changed, QueueRow)
    later = Idempotency("key-digest", b"body-digest", 2_000, 60_000)
    assert await insert(store, owner, due=0, idempotency=later) == (InsertOutcome.REPLAYED, changed)
    assert await store.count_by_state() == {"RUNNING": 1}


async def test_a_key_reused_with_another_body_stores_nothing(store: TaskStore, owner: str) -> None:
    await add(store, owner, due=FUTURE, idempotency=Idempotency("key", b"body", 1, 60_000))
    reused = Idempotency("key", b"another-body", 2, 60_000)
    assert await insert(store, owner, due=0, idempotency=reused) == (InsertOutcome.KEY_REUSED, None)
    assert await store.count_by_state() == {"RUNNING": 1}


async def test_keys_are_each_owners_own(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    once = Idempotency("key", b"body", 1, 60_000)
    mine = await add(store, owner, due=FUTURE, idempotency=once)
    theirs = await insert(store, other, due=FUTURE, idempotency=once)
    assert theirs[0] is InsertOutcome.INSERTED and theirs[1] is not None
    assert theirs[1].id != mine.id


async def test_an_expired_key_registers_anew_and_is_remembered_again(
    store: TaskStore, owner: str
) -> None:
    first = await add(store, owner, due=FUTURE, idempotency=Idempotency("key", b"a", 1, 100))
    # Expired at 101: another body is no reuse, and registers a new task.
    outcome, second = await insert(
        store, owner, due=FUTURE, idempotency=Idempotency("key", b"b", 101, 100)
    )
    assert outcome is InsertOutcome.INSERTED and second is not None and second.id != first.id
    replay = await insert(store, owner, due=0, idempotency=Idempotency("key", b"b", 200, 100))
    assert replay == (InsertOutcome.REPLAYED, second)
    reused = await insert(store, owner, due=0, idempotency=Idempotency("key", b"a", 200, 100))
    assert reused == (InsertOutcome.KEY_REUSED, None)


async def test_the_key_of_a_deleted_task_registers_anew(store: TaskStore, owner: str) -> None:
    once = Idempotency("key", b"body", 1, 60_000)
    first = await add(store, owner, due=FUTURE, idempotency=once)
    assert await store.delete(owner, first.id)
    outcome, second = await insert(store, owner, due=FUTURE, idempotency=once)
    assert outcome is InsertOutcome.INSERTED and second is not None and second.id != first.id
    assert await insert(store, owner, due=0, idempotency=once) == (InsertOutcome.REPLAYED, second)


async def test_a_registration_refused_for_the_limit_remembers_no_key(
    store: TaskStore, owner: str
) -> None:
    once = Idempotency("key", b"body", 1, 60_000)
    assert await insert(store, owner, due=0, limit=0, idempotency=once) == (
        InsertOutcome.LIMIT_REACHED,
        None,
    )
    outcome, row = await insert(store, owner, due=0, idempotency=once)
    assert outcome is InsertOutcome.INSERTED and row is not None


async def test_a_replay_is_answered_at_the_limit(store: TaskStore, owner: str) -> None:
    once = Idempotency("key", b"body", 1, 60_000)
    row = await add(store, owner, due=FUTURE, limit=1, idempotency=once)
    assert await insert(store, owner, due=0, limit=1, idempotency=once) == (
        InsertOutcome.REPLAYED,
        row,
    )


# --- reads ----------------------------------------------------------------------------------


async def test_a_task_is_read_by_its_owner_only(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    row = await add(store, owner, due=FUTURE)
    assert await store.get(other, row.id) is None
    assert await store.get(owner, str(ULID())) is None
    assert await store.reload(str(ULID())) is None


def _summary(row: QueueRow) -> QueueSummaryRow:
    return QueueSummaryRow(
        row.id,
        row.state,
        row.created_at,
        row.status_code,
        row.estimate_execution_at,
        row.estimate_end_at,
        row.schedule_id,
    )


async def test_lists_filter_sort_and_page_an_owners_tasks(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    await add(store, other, due=FUTURE)
    # Created in one order, due in the reverse one; two share a creation time (id decides).
    rows = [
        await add(store, owner, created_at=created, due=FUTURE - created)
        for created in (10, 20, 20, 30)
    ]
    paused = await store.change(owner, rows[1].id, lambda _row: Change(state="PAUSED"))
    assert isinstance(paused, QueueRow)
    rows[1] = paused

    async def listed(**query: Any) -> list[QueueSummaryRow]:
        values: dict[str, Any] = {
            "order": "createdAt",
            "descending": False,
            "limit": 10,
            "offset": 0,
        }
        return await store.list_tasks(owner, **{**values, **query})

    by_created = sorted(rows, key=lambda row: (row.created_at, row.id))
    assert await listed() == [_summary(row) for row in by_created]
    assert await listed(descending=True) == [_summary(row) for row in reversed(by_created)]
    by_due = sorted(rows, key=lambda row: (row.estimate_execution_at, row.id))
    assert await listed(order="estimateExecutionAt") == [_summary(row) for row in by_due]
    assert await listed(order="estimateEndAt") == [
        _summary(row) for row in sorted(rows, key=lambda row: row.id)
    ]
    assert await listed(filters=ListFilters(state="PAUSED")) == [_summary(rows[1])]
    assert await listed(filters=ListFilters(state="SUCCESS")) == []
    assert await listed(filters=ListFilters(schedule_id=str(ULID()))) == []
    assert await listed(limit=2, offset=1) == [_summary(row) for row in by_created[1:3]]
    assert await listed(offset=4) == []


async def test_ids_in_state_are_the_oldest_and_their_total(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    await add(store, other, due=FUTURE)
    rows = [await add(store, owner, created_at=created, due=FUTURE) for created in (30, 10, 20)]
    oldest = [row.id for row in sorted(rows, key=lambda row: row.created_at)]
    assert await store.ids_in_state(owner, "RUNNING", 2) == (oldest[:2], 3)
    assert await store.ids_in_state(owner, "RUNNING", 10) == (oldest, 3)
    assert await store.ids_in_state(owner, "PAUSED", 10) == ([], 0)


# --- changes --------------------------------------------------------------------------------


async def test_a_change_applies_what_decide_returns_and_bumps_the_version(
    store: TaskStore, owner: str
) -> None:
    row = await add(store, owner, due=FUTURE)
    seen: list[QueueRow] = []

    def decide(current: QueueRow) -> Change:
        seen.append(current)
        return Change(state="PAUSED", paused_at=5, metadata=b"new")

    changed = await store.change(owner, row.id, decide)
    assert seen == [row]
    assert changed == QueueRow(
        *(row.id, owner, "PAUSED", 1, 0, FUTURE, 0, 5, 0, 0, 1),
        *(row.request, b"new", None, 0, None, False),
    )
    assert await store.get(owner, row.id) == changed
    again = await store.change(owner, row.id, lambda _row: Change(state="RUNNING", paused_at=None))
    assert isinstance(again, QueueRow) and (again.state, again.version) == ("RUNNING", 2)


async def test_a_refused_change_changes_nothing(store: TaskStore, owner: str) -> None:
    row = await add(store, owner, due=FUTURE)
    refusal = Rejected("no")
    assert await store.change(owner, row.id, lambda _row: refusal) == refusal
    assert await store.get(owner, row.id) == row


async def test_a_change_to_another_owners_task_is_none(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    row = await add(store, owner, due=FUTURE)

    def decide(_row: QueueRow) -> Change:
        raise AssertionError("called")

    assert await store.change(other, row.id, decide) is None
    assert await store.change(owner, str(ULID()), decide) is None


async def test_reactivating_a_finished_task_is_refused_at_the_limit(
    store: TaskStore, owner: str
) -> None:
    row = await add(store, owner, due=FUTURE)
    await add(store, owner, due=FUTURE)
    revoked = await store.change(owner, row.id, lambda _row: Change(state="REVOKED"), limit=2)
    assert isinstance(revoked, QueueRow)
    back = await store.change(owner, row.id, lambda _row: Change(state="RUNNING"), limit=1)
    assert back == Rejected(limit_message(1))
    running = await store.change(owner, row.id, lambda _row: Change(state="RUNNING"), limit=2)
    assert isinstance(running, QueueRow) and running.state == "RUNNING"
    assert await store.active_counts() == {owner: (2, 2)}
    # An active task's own changes are never refused for the limit.
    paused = await store.change(owner, row.id, lambda _row: Change(state="PAUSED"), limit=1)
    assert isinstance(paused, QueueRow) and paused.state == "PAUSED"


async def test_an_error_in_decide_rolls_the_change_back(store: TaskStore, owner: str) -> None:
    row = await add(store, owner, due=FUTURE)

    def decide(_row: QueueRow) -> Change:
        raise LookupError("broken decide")

    with pytest.raises(LookupError, match="broken decide"):
        await store.change(owner, row.id, decide)
    assert await store.get(owner, row.id) == row


# --- deletes --------------------------------------------------------------------------------


async def test_a_task_is_deleted_once_and_by_its_owner_only(store: TaskStore, owner: str) -> None:
    other = await make_owner(store, "owner-two")
    row = await add(store, owner, due=FUTURE)
    assert not await store.delete(other, row.id)
    assert await store.delete(owner, row.id)
    assert not await store.delete(owner, row.id)
    assert await store.get(owner, row.id) is None
    assert await store.active_counts() == {owner: (0, 0), other: (0, 0)}


async def test_a_deleted_tasks_attempts_go_with_it(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await add(store, owner, due=now - 1)
    (due,) = await store.claim(holder="h", window_ms=0, lease_ms=60_000, limit=1)
    assert await store.started(holder="h", due=due, now=now) == 1
    assert len(await store.attempts(row.id, limit=10, offset=0)) == 1
    assert await store.delete(owner, row.id)
    assert await store.attempts(row.id, limit=10, offset=0) == []
    assert await store.leased_versions("h") == {}
