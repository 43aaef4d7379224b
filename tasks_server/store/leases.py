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

from tasks_server.store import destinations, flow, stats, workflows
from tasks_server.store.base import (
    CircuitNote,
    Due,
    NewTask,
    QueueRow,
    Recorded,
    Result,
    callback_values,
)
from tasks_server.store.driver import Driver, Row, Tx

SUCCESS = "SUCCESS"


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
            candidates = [flow.Candidate(Due(*row[:-2]), row[-2], row[-1]) for row in rows]
            planned = flow.plan(
                candidates, busy=busy, next_start_at=locked[0], now=now, horizon=horizon
            )
            await tx.execute("lease", holder, until, [due.id for due in planned.leased])
            await tx.execute("flow_advance", planned.next_start_at, owner_id, key)
            claimed += planned.leased
        if claimed:
            ids = [due.id for due in claimed]
            await stats.count(tx, await tx.fetch("interrupt_claimed", holder, now, ids))
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
    circuit: CircuitNote | None = None

    def task(self) -> Row:
        """The task row's columns, as `record_outcomes` binds them."""
        r, due = self.result, self.due
        retry_at = None if r.state is not None else r.retry_at
        return (
            *(due.id, self.holder, due.version, r.state, r.status_code, r.response),
            *(r.finished_at, retry_at, r.outcome, r.attempt),
        )

    def attempt(self) -> Row:
        """The attempt row's columns, as `close_attempts` binds them."""
        r = self.result
        return (
            *(self.due.id, r.attempt, r.finished_at, r.attempt_status_code, r.outcome),
            *(r.error, r.response, r.sent),
        )


async def record(
    d: Driver,
    *,
    holder: str,
    due: Due,
    result: Result,
    keep: int,
    callback: NewTask | None = None,
    circuit: CircuitNote | None = None,
) -> Recorded:
    """Close the attempt row and write the task's outcome in one transaction; False when the
    task changed meanwhile (the attempt row is closed all the same). An ending outcome that
    applies inserts `callback` with it."""
    outcome = _Outcome(holder, due, result, keep, callback, circuit)
    recorded: Recorded = await d.share(_record_all, outcome)
    return recorded


async def _record_all(tx: Tx, items: list[_Outcome]) -> list[Recorded]:
    # The rows other writers share the most come last, so they wait for each other the
    # shortest: the attempts (one task's rows are written by its holder alone), then the
    # circuits and the counts (spread over slots), then the tasks, whose ends, callbacks and
    # releases lock their owner's row (its count of active tasks) to the commit.
    closed = await tx.fetch_rows("close_attempts", [o.attempt() for o in items])
    pruned = [(o.due.id, o.result.attempt - o.keep) for o in items if o.result.attempt > o.keep]
    if pruned:
        await tx.execute_rows("prune_attempts", pruned)
    notes = [(o.circuit, o.result.finished_at) for o in items if o.circuit is not None]
    if notes:
        await destinations.circuit_updates(tx, notes)
    await stats.count(tx, closed)
    outcomes = [o.task() for o in items]
    # Each applied outcome's task, and whether it has dependents to settle.
    applied = {row[0]: bool(row[1]) for row in await tx.fetch_rows("record_outcomes", outcomes)}
    callbacks = [o for o in items if o.callback is not None and o.result.state is not None]
    callbacks = [o for o in callbacks if o.due.id in applied]
    if callbacks:
        made = [(o.due, o.callback) for o in callbacks if o.callback is not None]
        rows = [callback_values(due.owner_id, due.id, task) for due, task in made]
        await tx.execute_rows("insert_callbacks", rows)
        await tx.execute_rows("set_callback_ids", [(task.queue_id, due.id) for due, task in made])
    ended = [(o.due.id, o.result.state == SUCCESS) for o in items if o.result.state is not None]
    ended = [(queue_id, succeeded) for queue_id, succeeded in ended if applied.get(queue_id)]
    if ended:
        await workflows.settle(tx, ended, max(o.result.finished_at for o in items))
    settled = {queue_id for queue_id, _ in ended}
    return [
        Recorded.SETTLED
        if o.due.id in settled
        else Recorded.APPLIED
        if o.due.id in applied
        else Recorded.DISCARDED
        for o in items
    ]


async def aborted(
    d: Driver, *, holder: str, queue_id: str, now: int, started: int | None
) -> QueueRow | None:
    """Close the aborted attempt (by its start time) if it was opened, and read the task as
    it is now. Only that attempt: a newer one of the task may already be running."""

    async def unit(tx: Tx) -> QueueRow | None:
        if started is not None:
            await stats.count(tx, await tx.fetch("abort_open", now, queue_id, holder, started))
        row = await tx.fetchrow("select_by_id", queue_id)
        return None if row is None else QueueRow.from_row(row)

    return await d.write(unit)


async def abandon(d: Driver, *, holder: str, queue_id: str, now: int) -> None:
    """Give a task up after a failed write: its open attempt ends INTERRUPTED, its lease goes,
    so this process or another runs it again."""

    async def unit(tx: Tx) -> None:
        await tx.execute("release_lease", queue_id, holder)
        await stats.count(tx, await tx.fetch("interrupt_open_of_task", now, queue_id, holder))

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
        await stats.count(tx, await tx.fetch("interrupt_open_of", now, holder))

    await d.write(unit)


async def release_all(d: Driver) -> None:
    """At start-up of a server that is alone on its database: every lease is stale."""
    await d.statement(lambda tx: tx.execute("release_all_leases"))
