"""Workflows (SPEC §17): tasks registered with their dependencies, and the dependents a task
releases or fails when it ends.

Both happen in the transaction that causes them: a registration reads (and locks) the states
of the tasks it depends on as it inserts; an outcome, a revocation or a deletion settles the
dependents of the tasks it ended with the same commit (`settle`). A dependent counts the
dependencies it still waits for (`pending_deps`), each ending one decrementing it in one
statement, so two parents ending at once on two nodes release the child exactly once, and a
parent with a thousand children releases them all in one write.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks_server.store.base import (
    DependencyResult,
    Idempotency,
    InsertOutcome,
    Link,
    Linked,
    LinkedTask,
    NewTask,
    Plan,
    QueueRow,
    QueueSummaryRow,
    callback_values,
    flow_columns,
    listing_columns,
)
from tasks_server.store.driver import Driver, Row, Tx
from tasks_server.store.idempotency import recall, remember

RUNNING, ERROR, SUCCESS = "RUNNING", "ERROR", "SUCCESS"
FAILED_DEPENDENCY = 424


async def insert_linked(
    d: Driver,
    owner_id: str,
    tasks: Sequence[LinkedTask],
    *,
    plan: Plan,
    limit: int,
    batch_id: str | None,
    idempotency: Idempotency | None,
) -> Linked:
    """`TaskStore.insert_linked`: `tasks` in an order where each comes after those of them it
    depends on; all of them, or none."""
    new_ids = {t.task.queue_id for t in tasks}
    wanted = {link.depends_on for t in tasks for link in t.links}
    existing = sorted(wanted - new_ids)

    async def unit(tx: Tx) -> Linked:
        if idempotency is not None:
            replayed = await _replay(tx, owner_id, idempotency)
            if replayed is not None:
                return replayed
        room = await tx.fetchrow("owner_has_room", owner_id, limit - len(tasks) + 1)
        if room is None:
            return Linked(InsertOutcome.NO_OWNER)
        if not room[0]:
            return Linked(InsertOutcome.LIMIT_REACHED)
        states: dict[str, str] = {}
        if existing:
            states = {row[0]: row[1] for row in await tx.fetch("mark_parents", owner_id, existing)}
            missing = [queue_id for queue_id in existing if queue_id not in states]
            if missing:
                return Linked(InsertOutcome.UNKNOWN_DEPENDENCY, unknown=missing[0])
        rows, edges = [], []
        for linked in tasks:
            parents = [(states[link.depends_on], link.require_success) for link in linked.links]
            state, pending = plan(parents) if parents else (RUNNING, 0)
            states[linked.task.queue_id] = state
            rows.append(_row(owner_id, linked, state, pending, batch_id, wanted))
            edges += [_edge(linked.task.queue_id, link) for link in linked.links]
        inserted = {
            row[0]: QueueRow.from_row(row)
            for row in await tx.fetch_rows("insert_linked_tasks", rows)
        }
        if edges:
            await tx.execute_rows("insert_dependencies", edges)
        if idempotency is not None:
            await remember(tx, owner_id, idempotency, batch_id or tasks[0].task.queue_id)
        ordered = tuple(inserted[t.task.queue_id] for t in tasks)
        return Linked(InsertOutcome.INSERTED, ordered)

    return await d.write(unit)


async def _replay(tx: Tx, owner_id: str, idempotency: Idempotency) -> Linked | None:
    """What the `Idempotency-Key` made before, or None: register anew."""
    refused, made = await recall(tx, owner_id, idempotency)
    if refused is not None:
        return Linked(refused)
    if made is None:
        return None
    found = await tx.fetch("batch_rows", owner_id, made)
    if not found:
        single = await tx.fetchrow("select_queue", made, owner_id)
        found = [] if single is None else [single]
    if not found:  # its tasks were deleted: register anew
        return None
    return Linked(InsertOutcome.REPLAYED, tuple(QueueRow.from_row(row) for row in found))


def _row(
    owner_id: str, linked: LinkedTask, state: str, pending: int, batch: str | None, wanted: set[str]
) -> Row:
    """The task's columns, as `insert_linked_tasks` binds them."""
    task, now = linked.task, linked.task.created_at
    due = task.due if state != RUNNING else max(task.due, now + linked.release_delay)
    failed = state == ERROR
    return (
        *(task.queue_id, owner_id, state, now, due, task.retry_limit, task.request),
        *(task.metadata, *flow_columns(task.flow).values(), batch, pending),
        *(linked.release_delay, FAILED_DEPENDENCY if failed else 0, now if failed else 0),
        *(int(failed), int(task.queue_id in wanted), linked.ref),
        *listing_columns(task.listing).values(),
    )


def _edge(queue_id: str, link: Link) -> Row:
    return (queue_id, link.depends_on, link.name, int(link.require_success))


async def settle(tx: Tx, ended: Sequence[tuple[str, bool]], now: int) -> list[str]:
    """Settle the dependents of the tasks that `ended` (id, whether it succeeded): those that
    required a failed one end ERROR 424, and so on down; the others wait for one fewer. The
    ids of the dependents that ended."""
    failed_all: list[str] = []
    while ended:
        failed = [queue_id for queue_id, succeeded in ended if not succeeded]
        newly = []
        if failed:
            newly = [row[0] for row in await tx.fetch("fail_dependents", failed, now)]
        await tx.execute("release_dependents", [queue_id for queue_id, _ in ended], now)
        failed_all += newly
        ended = [(queue_id, False) for queue_id in newly]
    return failed_all


async def results(d: Driver, queue_id: str) -> list[DependencyResult]:
    rows = await d.read(lambda tx: tx.fetch("dependency_results", queue_id))
    return [DependencyResult(*row) for row in rows]


async def links(d: Driver, queue_id: str) -> tuple[list[Link], list[str]]:
    """A task's dependencies and its dependents' ids."""

    async def unit(tx: Tx) -> tuple[list[Link], list[str]]:
        dependencies = await tx.fetch("dependencies_of", queue_id)
        dependents = await tx.fetch("dependents_of", queue_id)
        return [Link(row[0], row[1], bool(row[2])) for row in dependencies], [
            row[0] for row in dependents
        ]

    return await d.read(unit)


async def batch(
    d: Driver, owner_id: str, batch_id: str
) -> tuple[list[QueueSummaryRow], list[tuple[str, str, bool]]]:
    """A batch's tasks and its edges (from, to, requireSuccess)."""

    async def unit(tx: Tx) -> tuple[list[QueueSummaryRow], list[tuple[str, str, bool]]]:
        rows = await tx.fetch("batch_tasks", owner_id, batch_id)
        edges = await tx.fetch("batch_edges", owner_id, batch_id)
        return [QueueSummaryRow(*row) for row in rows], [
            (row[0], row[1], bool(row[2])) for row in edges
        ]

    return await d.read(unit)


async def callbacks_due(d: Driver, limit: int) -> list[QueueRow]:
    rows = await d.read(lambda tx: tx.fetch("callbacks_due", limit))
    return [QueueRow.from_row(row) for row in rows]


async def queue_callbacks(d: Driver, made: Sequence[tuple[QueueRow, NewTask | None]]) -> int:
    """Queue the failureCallbacks of tasks a failed dependency ended (`callbacks_due`), each
    with its task (None: it has none). Only those whose mark this transaction clears: of two
    processes sweeping at once, one queues each. How many were queued."""

    async def unit(tx: Tx) -> int:
        cleared = {
            row[0]
            for row in await tx.fetch_rows("clear_callback_due", [(row.id,) for row, _ in made])
        }
        queued = [(row, task) for row, task in made if task is not None and row.id in cleared]
        if queued:
            await tx.execute_rows(
                "insert_callbacks",
                [callback_values(row.owner_id, row.id, task) for row, task in queued],
            )
            await tx.execute_rows(
                "set_callback_ids", [(task.queue_id, row.id) for row, task in queued]
            )
        return len(queued)

    return await d.write(unit)
