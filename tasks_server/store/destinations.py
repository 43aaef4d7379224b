"""Destinations' circuits (SPEC §18.1): the transactions of the breaker, on both engines.

A circuit is a row per owner + scheme + host + port, made by the first failure to it, so a
healthy destination costs nothing. Outcomes update it in their own shared write
(`circuit_updates`, called by ``leases``). A task whose circuit is open is *held*: leased
to the circuit (`CIRCUIT_HOLDER` + id) until it opens, so no claim takes it meanwhile and
its due time, its place in line, is kept; closing the circuit frees its tasks at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks_server.store.base import CIRCUIT_HOLDER, CircuitNote, DestinationRow
from tasks_server.store.driver import Driver, Row, Tx


async def circuit_updates(tx: Tx, notes: Sequence[tuple[CircuitNote, int]]) -> None:
    """Count each attempt (its note, when it ended) against its circuit: answers first, so a
    destination that both answered and failed in one batch counts the failures after."""
    answered = {note.id: (note.id, now) for note, now in notes if not note.failed}
    if answered:
        closed = await tx.fetch_rows("circuit_answered", list(answered.values()))
        for (destination_id,) in closed:
            await tx.execute("release_circuit_holds", CIRCUIT_HOLDER + destination_id)
    failed: dict[str, tuple[CircuitNote, int, int, bool]] = {}
    for note, now in notes:
        if note.failed:
            _, n, _, probe = failed.get(note.id, (note, 0, now, False))
            failed[note.id] = (note, n + 1, now, probe or note.probe)
    if not failed:
        return
    rows = [(n.id, n.owner_id, n.address, now) for n, _, now, _ in failed.values()]
    await tx.execute_rows("add_destinations", rows)
    await tx.execute_rows("circuit_failed", [_failed_row(*entry) for entry in failed.values()])


def _failed_row(note: CircuitNote, n: int, now: int, probe: bool) -> Row:
    policy = note.policy
    return (note.id, n, note.error, now, policy.threshold, policy.open_ms, policy.cap_ms, +probe)


async def circuits(d: Driver) -> dict[str, int]:
    rows = await d.read(lambda tx: tx.fetch("circuits"))
    return {row[0]: row[1] for row in rows}


async def circuit(d: Driver, destination_id: str) -> int:
    row = await d.read(lambda tx: tx.fetchrow("select_circuit", destination_id))
    return 0 if row is None else int(row[0])


async def take_probe(d: Driver, destination_id: str, *, now: int, until: int) -> int | None:
    async def unit(tx: Tx) -> int | None:
        if await tx.fetchrow("take_probe", destination_id, now, until) is not None:
            return None
        row = await tx.fetchrow("select_circuit", destination_id)
        if row is None or row[0] == 0:
            return None  # closed meanwhile: attempts go as they come
        return int(max(row[0], row[1]))

    return await d.write(unit)


async def hold(d: Driver, *, holder: str, queue_id: str, destination_id: str, until: int) -> None:
    owner = CIRCUIT_HOLDER + destination_id
    await d.statement(lambda tx: tx.execute("hold_for_circuit", queue_id, holder, owner, until))


async def for_owner(d: Driver, owner_id: str, *, limit: int, offset: int) -> list[DestinationRow]:
    rows = await d.read(lambda tx: tx.fetch("list_destinations", owner_id, limit, offset))
    return [DestinationRow(*row) for row in rows]


async def reset(
    d: Driver, owner_id: str, destination_id: str, *, now: int
) -> DestinationRow | None:
    async def unit(tx: Tx) -> DestinationRow | None:
        row = await tx.fetchrow("reset_destination", destination_id, owner_id, now)
        if row is None:
            return None
        await tx.execute("release_circuit_holds", CIRCUIT_HOLDER + destination_id)
        return DestinationRow(*row)

    return await d.write(unit)


async def count_open(d: Driver) -> int:
    return int(await d.read(lambda tx: tx.fetchval("count_open_circuits")) or 0)


async def purge_idle(d: Driver, *, before: int, batch: int) -> int:
    """Up to `batch` closed circuits unchanged since before `before`: their rows only matter
    while a destination fails."""
    return await d.statement(lambda tx: tx.execute("purge_idle_destinations", before, batch))
