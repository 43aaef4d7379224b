"""An owner's overview (SPEC §19.4), read from the per-minute aggregates that closing an
attempt keeps (schema migration 8), so its cost follows the window, not the attempts."""

from __future__ import annotations

from tasks_server.store.base import Stats
from tasks_server.store.driver import Driver, Tx


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
            lateness={int(b): int(n) for b, n in lateness},
            failures=[(str(dest), int(n)) for dest, n in failures],
            states={str(s): int(n) for s, n in states},
        )

    return await d.read(unit)


async def purge(d: Driver, *, before: int) -> int:
    """Delete the aggregates of the minutes before `before`; the rows deleted."""

    async def unit(tx: Tx) -> int:
        names = ("purge_stats_attempts", "purge_stats_lateness", "purge_stats_failures")
        return sum([await tx.execute(name, before) for name in names])

    return await d.write(unit)
