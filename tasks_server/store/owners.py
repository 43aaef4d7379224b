"""Owner rows: creation, key digests and signing secrets (with rotation), deletion."""

from __future__ import annotations

from tasks_server.store.base import Credentials, DeleteOutcome, OwnerRecord, Reseal
from tasks_server.store.driver import Driver, Row, Tx


async def create(
    d: Driver,
    *,
    owner_id: str,
    name: str,
    key_digest: bytes,
    created_at: int,
    signing_secret: bytes | None = None,
) -> bool:
    """Insert the owner; False when the name is taken."""
    params = (owner_id, name, key_digest, signing_secret, created_at)
    return await d.statement(lambda tx: tx.fetchrow("insert_owner", *params)) is not None


async def key_digests(d: Driver, owner_id: str) -> Credentials | None:
    row = await d.read(lambda tx: tx.fetchrow("select_key_digests", owner_id))
    return None if row is None else credentials(row)


async def rotate_key(
    d: Driver, owner_id: str, name: str, digest: bytes, previous_until: int
) -> bool:
    """Make `digest` the owner's key digest; the old one stays valid until `previous_until`."""
    params = (previous_until, digest, owner_id, name)
    return await d.statement(lambda tx: tx.fetchrow("rotate_key", *params)) is not None


async def signing_secrets(
    d: Driver, owner_id: str, missing: bytes | None = None
) -> Credentials | None:
    """The sealed signing secrets; `missing` is stored first when the owner has none yet."""

    async def unit(tx: Tx) -> Credentials | None:
        if missing is not None:
            await tx.execute("set_missing_signing", missing, owner_id)
        row = await tx.fetchrow("select_signing", owner_id)
        return None if row is None else credentials(row)

    return await (d.read(unit) if missing is None else d.write(unit))


async def rotate_signing(
    d: Driver, owner_id: str, name: str, previous_until: int, reseal: Reseal
) -> bool:
    """Replace the signing secret in one transaction; False when the owner is not found.

    A sealed blob is bound to its column, so `reseal` seals the old secret again for the
    previous column.
    """

    async def unit(tx: Tx) -> bool:
        row = await tx.fetchrow("lock_signing_by_name", owner_id, name)
        if row is None:
            return False
        previous, current = reseal(None if row[0] is None else bytes(row[0]))
        await tx.execute("rotate_signing", previous, previous_until, current, owner_id)
        return True

    return await d.write(unit)


async def get(d: Driver, owner_id: str, name: str) -> OwnerRecord | None:
    row = await d.read(lambda tx: tx.fetchrow("select_owner", owner_id, name))
    return None if row is None else OwnerRecord(*row)


async def delete(d: Driver, owner_id: str, name: str) -> DeleteOutcome:
    """Delete the owner (and its finished tasks) unless it still has queued tasks."""

    async def unit(tx: Tx) -> DeleteOutcome:
        row = await tx.fetchrow("lock_owner_active", owner_id, name)
        if row is None:
            return DeleteOutcome.NOT_FOUND
        if row[0]:
            return DeleteOutcome.HAS_TASKS
        await tx.execute("delete_owner", owner_id)
        return DeleteOutcome.DELETED

    return await d.write(unit)


def credentials(row: Row) -> Credentials:
    current, previous, until = row
    return Credentials(
        None if current is None else bytes(current),
        None if previous is None else bytes(previous),
        until,
    )
