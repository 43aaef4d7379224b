"""Rows imported from the original Bun server (SPEC §19.1), and its owners' first sign-in.

An import keeps every id, so a second run finds them taken and stores nothing twice. An
imported owner's key is checked once against the original's argon2 hash (``api.auth``), then
`adopt_key` replaces the hash by our digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

from tasks_server.store.base import Listing, listing_columns
from tasks_server.store.driver import Driver, Tx


@dataclass(frozen=True, slots=True)
class ImportedOwner:
    id: str
    name: str
    key_hash: str  # the original's argon2 hash of the key
    created_at: int


@dataclass(frozen=True, slots=True)
class ImportedTask:
    """A task in our columns (blobs already sealed for `id`)."""

    id: str
    owner_id: str
    state: str
    created_at: int
    status_code: int
    estimate_execution_at: int
    estimate_end_at: int
    paused_at: int | None
    retry_count: int
    retry_limit: int
    attempts: int
    request: bytes
    metadata: bytes | None
    response: bytes | None
    listing: Listing  # what lists show of it, as for a task registered here


async def owner_name(d: Driver, owner_id: str) -> str | None:
    """The name of the owner with this id, None when there is none."""
    row = await d.read(lambda tx: tx.fetchrow("select_owner_name", owner_id))
    return None if row is None else str(row[0])


async def import_owner(d: Driver, owner: ImportedOwner) -> bool:
    """Insert the owner; False when its id or name is taken."""
    params = (owner.id, owner.name, b"", owner.key_hash, owner.created_at)
    return await d.statement(lambda tx: tx.fetchrow("import_owner", *params)) is not None


async def import_tasks(d: Driver, tasks: Sequence[ImportedTask]) -> list[str]:
    """Insert the tasks in one transaction; the ids stored (a taken id is left as it is)."""

    async def unit(tx: Tx) -> list[str]:
        stored = []
        for task in tasks:
            row = (*astuple(task)[:-1], *listing_columns(task.listing).values())
            if await tx.fetchrow("import_task", *row) is not None:
                stored.append(task.id)
        return stored

    return await d.write(unit)


async def original_key(d: Driver, owner_id: str) -> str | None:
    """The original's hash of the owner's key, while its first use has not replaced it."""
    row = await d.read(lambda tx: tx.fetchrow("select_original_key", owner_id))
    return None if row is None or row[0] is None else str(row[0])


async def adopt_key(d: Driver, owner_id: str, key_hash: str, digest: bytes) -> bool:
    """Replace the hash by the digest of the key it verified; False when already replaced."""
    params = (digest, owner_id, key_hash)
    return await d.statement(lambda tx: tx.execute("adopt_original_key", *params)) > 0
