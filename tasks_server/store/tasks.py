"""Task rows as clients see them: registration (with its limit and `Idempotency-Key`), reads,
changes and deletion.

The owner's row is locked first (its count of active tasks is the limit), so registrations
on any node count exactly, and concurrent repeats of a key store one task. Client changes
never touch a lease: they bump `version`, and an outcome is recorded only for the version it
was run with (``leases``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks_server.store import queries, workflows
from tasks_server.store.base import (
    NO_FILTERS,
    NO_LISTING,
    AttemptRow,
    Decide,
    Flow,
    Idempotency,
    InsertOutcome,
    ListFilters,
    Listing,
    NewTask,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    change_columns,
    flow_columns,
    limit_message,
    listing_columns,
    task_values,
)
from tasks_server.store.driver import Driver, Tx
from tasks_server.store.idempotency import recall, remember

ACTIVE = ("RUNNING", "PAUSED", "WAITING")
# A label filter starts from a label this rare and sorts what it finds; one more common walks
# the owner's tasks in order, where matches come soon.
RARE_LABEL = 10_000

Inserted = tuple[InsertOutcome, QueueRow | None]


async def insert(
    d: Driver,
    *,
    queue_id: str,
    owner_id: str,
    created_at: int,
    due: int,
    retry_limit: int,
    request: bytes,
    metadata: bytes | None,
    limit: int,
    lease: tuple[str, int] | None,
    idempotency: Idempotency | None = None,
    flow: Flow | None = None,
    listing: Listing = NO_LISTING,
) -> Inserted:
    """`TaskStore.insert`; `lease` is (holder, how long it lasts in ms)."""
    holder, lease_ms = lease or (None, 0)
    values = (queue_id, owner_id, created_at, due, retry_limit, request, metadata, holder)
    values += (lease_ms, *flow_columns(flow).values())
    shown = listing_columns(listing).values()

    async def unit(tx: Tx) -> Inserted:
        row = await tx.fetchrow("insert_queue", *values, limit, *shown)
        if row is not None:
            return InsertOutcome.INSERTED, QueueRow.from_row(row)
        if await tx.fetchrow("owner_exists", owner_id) is None:
            return InsertOutcome.NO_OWNER, None
        return InsertOutcome.LIMIT_REACHED, None

    async def once(tx: Tx) -> Inserted:
        assert idempotency is not None
        refused, made = await recall(tx, owner_id, idempotency)
        if refused is not None:
            return refused, None
        if made is not None:
            found = await tx.fetchrow("select_queue", made, owner_id)
            if found is not None:  # else its task was deleted: register anew
                return InsertOutcome.REPLAYED, QueueRow.from_row(found)
        outcome, row = await unit(tx)
        if row is not None:
            await remember(tx, owner_id, idempotency, row.id)
        return outcome, row

    # Alone, the insert is one statement that checks the owner's room as it inserts.
    return await (d.statement(unit) if idempotency is None else d.write(once))


async def insert_many(
    d: Driver, owner_id: str, tasks: Sequence[NewTask], *, limit: int
) -> InsertOutcome:
    """Every one of `tasks` in one transaction, or none when the owner lacks room for them."""

    async def unit(tx: Tx) -> InsertOutcome:
        room = await tx.fetchrow("owner_has_room", owner_id, limit - len(tasks) + 1)
        if room is None:
            return InsertOutcome.NO_OWNER
        if not room[0]:
            return InsertOutcome.LIMIT_REACHED
        if tasks:
            await tx.execute_rows("insert_tasks", [task_values(owner_id, t) for t in tasks])
        return InsertOutcome.INSERTED

    return await d.write(unit)


async def get(d: Driver, owner_id: str, queue_id: str) -> QueueRow | None:
    row = await d.read(lambda tx: tx.fetchrow("select_queue", queue_id, owner_id))
    return None if row is None else QueueRow.from_row(row)


async def reload(d: Driver, queue_id: str) -> QueueRow | None:
    row = await d.read(lambda tx: tx.fetchrow("select_by_id", queue_id))
    return None if row is None else QueueRow.from_row(row)


async def list_for_owner(
    d: Driver,
    owner_id: str,
    *,
    filters: ListFilters = NO_FILTERS,
    order: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[QueueSummaryRow]:
    named: list[tuple[str, tuple[object, ...]]] = [
        (name, (value,))
        for name in (
            *("state", "schedule_id", "batch_id", "status_code", "outcome"),
            *("created_from", "created_to"),
        )
        if (value := getattr(filters, name)) is not None
    ]

    async def unit(tx: Tx) -> list[Any]:
        labels = list(filters.labels)
        counts = [await tx.fetchval("count_label", owner_id, *pair) for pair in labels]
        if 0 in counts:
            return []
        statement, start = "list_tasks", tuple[str, ...]()
        if labels and min(counts) <= RARE_LABEL:
            # The rarest label's tasks, sorted, rather than all the owner's walked in order.
            statement = "list_tasks_by_label"
            start = labels.pop(counts.index(min(counts)))
        used = [*named, *(("label", pair) for pair in labels)]
        names = tuple(name for name, _ in used)
        fill = queries.listing(names, order, descending, first=2 + len(start))
        args = (*start, *(value for _, values in used for value in values), limit, offset)
        return await tx.fetch(statement, owner_id, *args, fill=fill)

    return [QueueSummaryRow(*row) for row in await d.read(unit)]


async def ids_in_state(d: Driver, owner_id: str, state: str, limit: int) -> tuple[list[str], int]:
    """The owner's oldest `limit` task ids in `state`, and how many are in it in all."""

    async def unit(tx: Tx) -> tuple[list[str], int]:
        rows = await tx.fetch("select_ids_in_state", owner_id, state, limit)
        total = await tx.fetchval("count_in_state", owner_id, state)
        return [row[0] for row in rows], int(total or 0)

    return await d.read(unit)


async def change(
    d: Driver, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
) -> QueueRow | Rejected | None:
    """Apply `decide(row)`'s change in one transaction, bumping the version.

    None when the task does not exist for this owner. A change that makes a finished task
    active again is refused when the owner already holds `limit` active tasks.
    """

    async def unit(tx: Tx) -> QueueRow | Rejected | None:
        found = await tx.fetchrow("lock_queue", queue_id, owner_id)
        if found is None:
            return None
        row = QueueRow.from_row(found)
        decided = decide(row)
        if isinstance(decided, Rejected):
            return decided
        changes = change_columns(decided)
        reactivates = row.state not in ACTIVE and changes.get("state", row.state) in ACTIVE
        if reactivates and limit is not None:
            room = await tx.fetchrow("owner_has_room", owner_id, limit)
            if room is None or not room[0]:
                return Rejected(limit_message(limit))
        fill = queries.assignments(tuple(changes), queries.QUEUE_CHANGEABLE)
        updated = await tx.fetchrow("update_queue", *changes.values(), queue_id, fill=fill)
        assert updated is not None
        changed = QueueRow.from_row(updated)
        if row.state in ACTIVE and changed.state not in ACTIVE and changed.has_dependents:
            await workflows.settle(tx, [(queue_id, changed.state == "SUCCESS")], await tx.now())
        await tx.notify(queue_id, changed.version)
        return changed

    return await d.write(unit)


async def delete(d: Driver, owner_id: str, queue_id: str) -> bool:
    async def unit(tx: Tx) -> bool:
        deleted = await tx.fetchrow("delete_queue", queue_id, owner_id)
        if deleted is None:
            return False
        if deleted[1] in ACTIVE and deleted[2]:  # its dependents lose it unfinished
            await workflows.settle(tx, [(queue_id, False)], await tx.now())
        await tx.notify(queue_id, None)
        return True

    return await d.write(unit)


async def attempts(d: Driver, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]:
    rows = await d.read(lambda tx: tx.fetch("select_attempts", queue_id, limit, offset))
    return [AttemptRow(*row) for row in rows]
