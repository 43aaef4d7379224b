"""An owner's overview (SPEC §19.4): per-minute counts of closed attempts, kept by the
transactions that close them (`count`, one statement for all an outcome write closed), so
reading it (`read`) costs what the window holds, not the attempts."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from tasks_server.store.base import Stats
from tasks_server.store.driver import Driver, Row, Tx

# A start's lateness is counted in the bucket of the bounds it exceeds: percentiles read as
# "at most this many ms".
LATENESS_BOUNDS_MS: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
LATENESS_BOUNDS_MS += (5000, 10000, 30000, 60000, 300000, 3600000)
# Attempts counted against their destination.
FAILED = frozenset({"FAILURE", "TIMEOUT", "TOO_LARGE", "TRANSPORT"})
MINUTE_MS = 60_000


def lateness_bucket(late_ms: int) -> int:
    """How many of `LATENESS_BOUNDS_MS` a start `late_ms` after its due time exceeds."""
    return bisect_left(LATENESS_BOUNDS_MS, late_ms)


async def count(tx: Tx, closed: Sequence[Row]) -> None:
    """Count the attempts `closed` (rows of ``@CLOSED@``: task, outcome, finish, lateness) in
    their owner's minute. The counting rows are shared by every writer of the minute: each
    connection writes its own slot of them (PostgreSQL), and they are written after what the
    transaction's own tasks lock, before what their owners' rows do."""
    if closed:
        rows = [
            (
                queue_id,
                finished_at // MINUTE_MS * MINUTE_MS,
                outcome,
                str(lateness_bucket(late)),
                outcome in FAILED,
            )
            for queue_id, outcome, finished_at, late in closed
        ]
        await tx.execute_rows("count_attempts", rows)


async def read(d: Driver, owner_id: str, *, since: int, top: int) -> Stats:
    """The owner's aggregates of the minutes from `since`, its `top` failing destinations,
    and its tasks by state."""

    async def unit(tx: Tx) -> Stats:
        attempts = await tx.fetch("stats_attempts", owner_id, since)
        lateness = await tx.fetch("stats_lateness", owner_id, since)
        failures = await tx.fetch("stats_failures", owner_id, since, top)
        states = await tx.fetch("stats_states", owner_id)
        return Stats(
            attempts=[(int(m), str(o), int(n)) for m, o, n in attempts],
            lateness={int(b): int(n) for b, n in lateness},  # the buckets are text keys
            failures=[(str(dest), int(n)) for dest, n in failures],
            states={str(s): int(n) for s, n in states},
        )

    return await d.read(unit)


async def purge(d: Driver, *, before: int) -> int:
    """Delete the aggregates of the minutes before `before`; the rows deleted."""

    async def unit(tx: Tx) -> int:
        return await tx.execute("purge_stats", before)

    return await d.write(unit)
