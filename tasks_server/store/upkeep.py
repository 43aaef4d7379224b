"""What the retention job deletes and what metrics count."""

from __future__ import annotations

from tasks_server.store.base import Overdue
from tasks_server.store.driver import Driver


async def purge_finished(d: Driver, *, before: int, batch: int) -> int:
    """Delete up to `batch` tasks finished before `before`, with their attempts."""
    return await d.statement(lambda tx: tx.execute("purge_finished", before, batch))


async def purge_idle_flows(d: Driver, *, before: int, batch: int) -> int:
    """A flow key's row only keeps its next start: once that is past, no row means the same."""
    return await d.statement(lambda tx: tx.execute("purge_idle_flows", before, batch))


async def count_by_state(d: Driver) -> dict[str, int]:
    return {row[0]: row[1] for row in await d.read(lambda tx: tx.fetch("count_by_state"))}


async def overdue(d: Driver, *, now: int, late_by: int) -> Overdue:
    """RUNNING tasks due more than `late_by` ms ago that have not started, and the oldest."""
    row = await d.read(lambda tx: tx.fetchrow("overdue", now - late_by))
    return Overdue(0, None) if row is None else Overdue(int(row[0]), row[1])


async def active_counts(d: Driver) -> dict[str, tuple[int, int]]:
    """Per owner: the kept counter of active tasks and a full recount (they must agree)."""
    rows = await d.read(lambda tx: tx.fetch("count_active_by_owner"))
    return {row[0]: (row[1], row[2]) for row in rows}
