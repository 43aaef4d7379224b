"""The questions start-up asks of a database: does it hold data, does the cipher key open it,
and the keys it holds in plain text from before SPEC §15.7.

Those keys are digested once: a migration marks the database, and start-up digests once it
has checked the cipher key (the migrations run before it has one), taking the mark in the
same transaction, so a restart never digests a digest. Nodes starting together wait on the
mark's row: the first digests, the others find no mark.
"""

from __future__ import annotations

from tasks_server.store.base import CipherCheck, KeyDigests
from tasks_server.store.driver import Transactions, Tx

CIPHER_CHECK = "cipher_check"  # the row holding the check value sealed with the cipher key


async def has_data(d: Transactions) -> bool:
    return bool(await d.read(lambda tx: tx.fetchval("has_data")))


async def check_cipher(d: Transactions, check: CipherCheck) -> None:
    """Run `check` on the stored check value and one sealed task, recording the value it
    returns; the table is locked, so nodes starting together record one value."""

    async def unit(tx: Tx) -> None:
        await tx.execute("lock_meta")
        stored = await tx.fetchval("select_meta", CIPHER_CHECK)
        sample = await tx.fetchrow("sealed_sample")
        value = check(
            None if stored is None else bytes(stored),
            None if sample is None else (sample[0], bytes(sample[1])),
        )
        if value is not None:
            await tx.execute("insert_meta", CIPHER_CHECK, value)

    await d.write(unit)


async def digest_plain_keys(d: Transactions, digests: KeyDigests) -> int:
    """`TaskStore.digest_plain_keys`: each step reads (owner, plain key) pairs and rewrites
    them as (owner, key, digest) rows."""
    steps = (
        ("select_plain_idempotency", "digest_idempotency", digests.idempotency_key),
        ("select_plain_flows", "digest_flows", digests.flow_key),
        ("select_plain_queue_flows", "digest_queue_flows", digests.flow_key),
    )

    async def unit(tx: Tx) -> int:
        if not await tx.execute("take_plain_keys_mark"):
            return 0
        await tx.execute("erase_freed")
        changed = 0
        for select, update, digest in steps:
            pairs = await tx.fetch(select)
            rows = [(owner, key, digest(owner, key)) for owner, key in pairs]
            if rows:
                changed += await tx.execute_rows(update, rows)
        return changed

    return await d.write(unit)
