"""The database as start-up and /health see it: its clock, whether it holds data, the cipher
check value, and the keys an older database held in plain text."""

from __future__ import annotations

import pytest

from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import Flow, Idempotency, InsertOutcome, TaskStore
from tasks_server.timeutil import now_ms
from tests.store.conftest import FUTURE, add, insert, make_owner

MINUTE_MS = 60_000


async def test_the_database_answers_and_its_clock_is_epoch_ms(store: TaskStore) -> None:
    await store.ping()
    before = now_ms()
    now = await store.now()
    assert abs(now - before) < MINUTE_MS  # the same machine's clock, in milliseconds


async def test_has_data_once_an_owner_or_task_exists(store: TaskStore) -> None:
    assert not await store.has_data()
    owner = await make_owner(store, "owner-one")
    assert await store.has_data()
    await add(store, owner, due=FUTURE)
    assert await store.has_data()


async def test_another_store_on_the_database_sees_what_was_written(
    store: TaskStore, owner: str, settings: Settings
) -> None:
    """Opening again migrates nothing twice, and reads what the first store committed."""
    row = await add(store, owner, due=FUTURE)
    other = build_store(settings)
    await other.open()
    try:
        assert await other.get(owner, row.id) == row
    finally:
        await other.close()


@pytest.mark.fresh_database
async def test_the_cipher_check_value_is_recorded_once_in_its_transaction(
    store: TaskStore,
) -> None:
    seen: list[tuple[bytes | None, tuple[str, bytes] | None]] = []

    def refuse(stored: bytes | None, sample: tuple[str, bytes] | None) -> bytes | None:
        seen.append((stored, sample))
        raise LookupError("the key does not open this database")

    def record(stored: bytes | None, sample: tuple[str, bytes] | None) -> bytes | None:
        seen.append((stored, sample))
        return b"check-value" if stored is None else None

    with pytest.raises(LookupError, match="does not open"):
        await store.check_cipher(refuse)
    await store.check_cipher(record)
    owner = await make_owner(store, "owner-one")
    row = await add(store, owner, due=FUTURE)
    await store.check_cipher(record)
    assert seen == [(None, None), (None, None), (b"check-value", (row.id, row.request))]


class Digests:
    """Stand-in keyed digests: what matters here is which values the store replaces."""

    def idempotency_key(self, owner_id: str, key: str) -> str:
        return f"idempotency:{owner_id}:{key}"

    def flow_key(self, owner_id: str, key: str) -> str:
        return f"flow:{owner_id}:{key}"


@pytest.mark.fresh_database
async def test_plain_keys_written_before_the_key_check_are_digested_once(
    store: TaskStore,
) -> None:
    """A migrated database marks the keys it holds as plain: the first call digests them (an
    `Idempotency-Key`, a flow key's tasks and its row), the next finds nothing to do."""
    owner = await make_owner(store, "owner-one")
    now = await store.now()
    plain = Idempotency("plain-key", b"body", 1, MINUTE_MS)
    replayed = await add(store, owner, due=FUTURE, idempotency=plain)
    paced = [await add(store, owner, due=now - 1, flow=Flow("plain-flow", 1, None)) for _ in "ab"]
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    await store.release("a", due.id)
    assert await store.digest_plain_keys(Digests()) == 1 + 2 + 1
    assert await store.digest_plain_keys(Digests()) == 0
    digested = Idempotency(f"idempotency:{owner}:plain-key", b"body", 2, MINUTE_MS)
    assert await insert(store, owner, due=FUTURE, idempotency=digested) == (
        InsertOutcome.REPLAYED,
        replayed,
    )
    (due,) = await store.claim(holder="a", window_ms=0, lease_ms=MINUTE_MS, limit=10)
    first = min(row.id for row in paced)  # due at once: the smaller id first
    assert (due.id, due.flow_key) == (first, f"flow:{owner}:plain-flow")


@pytest.mark.fresh_database
async def test_an_empty_database_has_no_plain_keys_to_digest(store: TaskStore) -> None:
    assert await store.digest_plain_keys(Digests()) == 0
    owner = await make_owner(store, "owner-one")
    await add(store, owner, due=FUTURE, idempotency=Idempotency("digest", b"body", 1, MINUTE_MS))
    assert await store.digest_plain_keys(Digests()) == 0  # the mark went with the first call
