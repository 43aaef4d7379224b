"""Rows imported from the original (SPEC §19.1): kept ids, stored once, states and counts as
given, and an owner's original key hash until its first use replaces it."""

from __future__ import annotations

from dataclasses import replace

from ulid import ULID

from tasks_server.store.base import Credentials, Listing, OwnerRecord, TaskStore
from tasks_server.store.imports import ImportedOwner, ImportedTask
from tests.store.conftest import make_owner

HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA"
ORIGINAL_ID = "1A250FA96521796654929490"  # the original's queue ids are not ULIDs


def task(owner_id: str, queue_id: str = ORIGINAL_ID, **fields: object) -> ImportedTask:
    made = ImportedTask(
        id=queue_id,
        owner_id=owner_id,
        state="RUNNING",
        created_at=10,
        status_code=500,
        estimate_execution_at=4_102_444_800_000,
        estimate_end_at=0,
        paused_at=None,
        retry_count=1,
        retry_limit=3,
        attempts=1,
        request=b"sealed request",
        metadata=b"sealed metadata",
        response=b"sealed response",
        listing=Listing(None, "POST", "http://127.0.0.1:9/x?k=***", "http://127.0.0.1:9"),
    )
    return replace(made, **fields)  # type: ignore[arg-type]


async def test_an_owner_keeps_its_id_and_hash_once(store: TaskStore) -> None:
    owner_id = str(ULID())
    assert await store.owner_name(owner_id) is None
    assert await store.import_owner(ImportedOwner(owner_id, "from-original", HASH, 7))
    assert not await store.import_owner(ImportedOwner(owner_id, "another-name", HASH, 7))
    assert not await store.import_owner(ImportedOwner(str(ULID()), "from-original", HASH, 7))
    assert await store.owner_name(owner_id) == "from-original"
    assert await store.get_owner(owner_id, "from-original") == OwnerRecord(
        owner_id, "from-original", 7, 0
    )
    # No digest yet: an empty one, which matches no key.
    assert await store.key_digests(owner_id) == Credentials(b"", None, None)
    assert await store.original_key(owner_id) == HASH


async def test_the_first_use_replaces_the_hash_by_the_digest_once(store: TaskStore) -> None:
    owner_id = str(ULID())
    await store.import_owner(ImportedOwner(owner_id, "from-original", HASH, 7))
    assert not await store.adopt_key(owner_id, "$argon2id$another", b"d" * 32)
    assert await store.adopt_key(owner_id, HASH, b"d" * 32)
    assert not await store.adopt_key(owner_id, HASH, b"e" * 32)
    assert await store.key_digests(owner_id) == Credentials(b"d" * 32, None, None)
    assert await store.original_key(owner_id) is None
    assert await store.original_key(await make_owner(store, "made-here")) is None


async def test_tasks_keep_their_columns_count_toward_the_owner_and_are_stored_once(
    store: TaskStore,
) -> None:
    owner_id = await make_owner(store, "owner-one")
    paused = task(owner_id, "1A250FA97901796654929808", state="PAUSED", paused_at=20)
    done = task(owner_id, "1A250FA99C71796654930375", state="SUCCESS", estimate_end_at=30)
    assert await store.import_tasks([task(owner_id), paused, done]) == [
        ORIGINAL_ID,
        paused.id,
        done.id,
    ]
    assert await store.import_tasks([task(owner_id, status_code=1)]) == []
    row = await store.get(owner_id, ORIGINAL_ID)
    assert row is not None
    assert (row.state, row.status_code, row.retry_count, row.retry_limit, row.attempts) == (
        "RUNNING",
        500,
        1,
        3,
        1,
    )
    assert (row.request, row.metadata, row.response) == (
        b"sealed request",
        b"sealed metadata",
        b"sealed response",
    )
    assert row.estimate_execution_at == 4_102_444_800_000 and not row.in_flight
    assert (row.method, row.target) == ("POST", "http://127.0.0.1:9/x?k=***")
    paused_row = await store.get(owner_id, paused.id)
    assert paused_row is not None and paused_row.paused_at == 20
    record = await store.get_owner(owner_id, "owner-one")
    assert record is not None and record.tasks_in_queue == 2  # RUNNING and PAUSED
