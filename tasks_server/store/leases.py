"""The scheduler's transactions: claims (leases), attempt starts and outcomes, and giving
tasks up.

A lease (`lease_owner`, `lease_until`) says which process may execute a task. It passes to
another process only once expired (on the store's clock), never to a task whose attempt its
claimer still runs; its holder releases it. Starts and outcomes are *shared* writes: one
transaction over every attempt that started or ended meanwhile, a few statements for many
attempts, which is what lets one PostgreSQL node drain a burst at SQLite's pace.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks_server.store import flow
from tasks_server.store.base import Due, NewTask, QueueRow, Result, listing_columns
from tasks_server.store.driver import Driver, Row, Tx


async def claim(d: Driver, *, holder: str, window_ms: int, lease_ms: int, limit: int) -> list[Due]:
    """`TaskStore.claim`. Flow keys are taken earliest first; a key another claim holds now
    (PostgreSQL) is skipped, not waited for, so claims never wait on each other."""

    async def unit(tx: Tx) -> list[Due]:
        now = await tx.now()
        horizon, until = now + window_ms, now + lease_ms
        claimed = [Due(*row) for row in await tx.fetch("claim", holder, now, horizon, until, limit)]
        for owner_id, key in await tx.fetch("flow_keys_ready", now, horizon, limit):
            if len(claimed) >= limit:
                break
            await tx.execute("flow_row", owner_id, key)
            locked = await tx.fetchrow("lock_flow", owner_id, key)
            if locked is None:
                continue
            busy = await tx.fetchval("flow_busy", owner_id, key, now)
            rows = await tx.fetch(
                "flow_candidates", holder, owner_id, key, now, horizon, limit - len(claimed)
            )
            candidates = [flow.Candidate(Due(*row[:9]), row[9], row[10]) for row in rows]
            planned = flow.plan(
                candidates, busy=busy, next_start_at=locked[0], now=now, horizon=horizon
            )
            await tx.execute("lease", holder, until, [due.id for due in planned.leased])
            await tx.execute("flow_advance", planned.next_start_at, owner_id, key)
            claimed += planned.leased
        if claimed:
            await tx.execute("interrupt_claimed", holder, now, [due.id for due in claimed])
        return claimed

    return await d.write(unit)


async def started(d: Driver, *, holder: str, due: Due, now: int) -> int | None:
    """Open the attempt row; its number, or None when the task changed since it was held."""
    number: int | None = await d.share(_start_all, (holder, due, now), statement=True)
    return number


async def _start_all(tx: Tx, items: list[tuple[str, Due, int]]) -> list[int | None]:
    rows = [(due.id, holder, due.version, now) for holder, due, now in items]
    opened = {row[0]: row[1] for row in await tx.fetch_rows("open_attempts", rows)}
    return [opened.get(due.id) for _, due, _ in items]


@dataclass(frozen=True, slots=True)
class _Outcome:
    holder: str
    due: Due
    result: Result
    keep: int
    callback: NewTask | None

    def task(self) -> Row:
        """The task row's columns, as `record_outcomes` binds them."""
        r, due = self.result, self.due
        retry_at = None if r.state is not None else r.retry_at
        return (
            *(due.id, self.holder, due.version, r.state, r.status_code, r.response),
            *(r.finished_at, retry_at),
        )

    def attempt(self) -> Row:
        """The attempt row's columns, as `close_attempts` binds them."""
        r = self.result
        return (
            *(self.due.id, r.attempt, r.finished_at, r.attempt_status_code, r.outcome),
            *(r.error, r.response),
        )


async def record(
    d: Driver,
    *,
    holder: str,
    due: Due,
    result: Result,
    keep: int,
    callback: NewTask | None = None,
) -> bool:
    """Close the attempt row and write the task's outcome in one transaction; False when the
    task changed meanwhile (the attempt row is closed all the same). An ending outcome that
    applies inserts `callback` with it."""
    applied: bool = await d.share(_record_all, _Outcome(holder, due, result, keep, callback))
    return applied


async def _record_all(tx: Tx, items: list[_Outcome]) -> list[bool]:
    # The attempts first, the tasks last: an ending task's owner row is then locked (its
    # count of active tasks) only for the end of the transaction, and other writers of that
    # owner's tasks wait the shortest. The rows of one task are written by its holder alone.
    await tx.execute_rows("close_attempts", [o.attempt() for o in items])
    pruned = [(o.due.id, o.result.attempt - o.keep) for o in items if o.result.attempt > o.keep]
    if pruned:
        await tx.execute_rows("prune_attempts", pruned)
    outcomes = [o.task() for o in items]
    applied = {row[0] for row in await tx.fetch_rows("record_outcomes", outcomes)}
    callbacks = [o for o in items if o.callback is not None and o.result.state is not None]
    callbacks = [o for o in callbacks if o.due.id in applied]
    if callbacks:
        await tx.execute_rows("insert_callbacks", [_callback_row(o) for o in callbacks])
        links = [(o.callback.queue_id, o.due.id) for o in callbacks if o.callback is not None]
        await tx.execute_rows("set_callback_ids", links)
    return [o.due.id in applied for o in items]


def _callback_row(outcome: _Outcome) -> Row:
    """A callback's task (SPEC §11.2), inserted with the outcome it reports: past the owner's
    limit, since a consequence of an accepted task must never fail."""
    task, parent = outcome.callback, outcome.due
    assert task is not None
    return (
        *(task.queue_id, parent.owner_id, task.created_at, task.due, task.retry_limit),
        *(task.request, task.metadata, parent.id, *listing_columns(task.listing).values()),
    )


async def aborted(
    d: Driver, *, holder: str, queue_id: str, now: int, started: tuple[int, int] | None
) -> QueueRow | None:
    """Close the aborted attempt (number, start time) if it was opened, and read the task as
    it is now. Only that attempt: a newer one of the task may already be running."""

    async def unit(tx: Tx) -> QueueRow | None:
        if started is not None:
            await tx.execute("abort_open", now, queue_id, holder, *started)
        row = await tx.fetchrow("select_by_id", queue_id)
        return None if row is None else QueueRow.from_row(row)

    return await d.write(unit)


async def abandon(d: Driver, *, holder: str, queue_id: str, now: int) -> None:
    """Give a task up after a failed write: its open attempt ends INTERRUPTED, its lease goes,
    so this process or another runs it again."""

    async def unit(tx: Tx) -> None:
        await tx.execute("release_lease", queue_id, holder)
        await tx.execute("interrupt_open_of_task", now, queue_id, holder)

    await d.write(unit)


async def leased_versions(d: Driver, holder: str) -> dict[str, tuple[str, int]]:
    rows = await d.read(lambda tx: tx.fetch("leased_versions", holder))
    return {row[0]: (row[1], row[2]) for row in rows}


async def renew(d: Driver, holder: str, ids: list[str], lease_ms: int) -> None:
    """Extend the leases of exactly the tasks `holder` still holds."""

    async def unit(tx: Tx) -> None:
        await tx.execute("renew_leases", holder, ids, await tx.now() + lease_ms)

    await d.statement(unit)


async def release(d: Driver, holder: str, queue_id: str) -> None:
    await d.statement(lambda tx: tx.execute("release_lease", queue_id, holder))


async def release_holder(d: Driver, holder: str, *, now: int) -> None:
    """A stopping holder frees its leases; attempts it leaves open were interrupted."""

    async def unit(tx: Tx) -> None:
        await tx.execute("release_leases_of", holder)
        await tx.execute("interrupt_open_of", now, holder)

    await d.write(unit)


async def release_all(d: Driver) -> None:
    """At start-up of a server that is alone on its database: every lease is stale."""
    await d.statement(lambda tx: tx.execute("release_all_leases"))
