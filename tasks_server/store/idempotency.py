"""`Idempotency-Key` entries of registrations (SPEC §15.7): what a key made, remembered with
its body's digest until it expires."""

from __future__ import annotations

from tasks_server.store.base import Idempotency, InsertOutcome
from tasks_server.store.driver import Tx

# Expired entries deleted per registration: more than one, so the purge outpaces expiry and
# the table stays bounded without a job.
PURGE_BATCH = 8


async def recall(
    tx: Tx, owner_id: str, idempotency: Idempotency
) -> tuple[InsertOutcome | None, str | None]:
    """Lock the owner's row (so concurrent repeats of a key store once) and look the key up:
    NO_OWNER or KEY_REUSED to refuse, else the id it made (None: register anew)."""
    if await tx.fetchrow("lock_owner", owner_id) is None:
        return InsertOutcome.NO_OWNER, None
    await tx.execute("purge_idempotency", idempotency.now, PURGE_BATCH)
    entry = await tx.fetchrow(
        "select_idempotency", owner_id, idempotency.key_digest, idempotency.now
    )
    if entry is None:
        return None, None
    if bytes(entry[0]) != idempotency.body_digest:
        return InsertOutcome.KEY_REUSED, None
    return None, entry[1]


async def remember(tx: Tx, owner_id: str, idempotency: Idempotency, made: str) -> None:
    expires = idempotency.now + idempotency.ttl_ms
    await tx.execute(
        "upsert_idempotency",
        owner_id,
        idempotency.key_digest,
        idempotency.body_digest,
        made,
        expires,
    )
