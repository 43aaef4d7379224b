"""Owners: creation, key digests and signing secrets with their rotation, deletion."""

from __future__ import annotations

from ulid import ULID

from tasks_server.lifecycle import Change
from tasks_server.store.base import Credentials, DeleteOutcome, OwnerRecord, QueueRow, TaskStore
from tests.store.conftest import add, make_owner


async def test_an_owner_is_created_once_per_name(store: TaskStore) -> None:
    owner_id = str(ULID())
    made = {"name": "taken", "key_digest": b"k", "created_at": 5, "signing_secret": b"s"}
    assert await store.create_owner(owner_id=owner_id, **made)
    assert not await store.create_owner(owner_id=str(ULID()), **made)
    assert await store.get_owner(owner_id, "taken") == OwnerRecord(owner_id, "taken", 5, 0)
    assert await store.key_digests(owner_id) == Credentials(b"k", None, None)
    assert await store.signing_secrets(owner_id) == Credentials(b"s", None, None)


async def test_an_owner_is_found_by_its_id_and_name_together(store: TaskStore, owner: str) -> None:
    assert await store.get_owner(owner, "another-name") is None
    assert await store.get_owner(str(ULID()), "owner-one") is None
    assert await store.key_digests(str(ULID())) is None
    assert await store.signing_secrets(str(ULID())) is None


async def test_a_rotated_key_keeps_the_previous_one_until_its_deadline(
    store: TaskStore, owner: str
) -> None:
    assert await store.rotate_key(owner, "owner-one", b"second", 1_000)
    assert await store.key_digests(owner) == Credentials(b"second", b"digest-owner-one", 1_000)
    assert await store.rotate_key(owner, "owner-one", b"third", 2_000)
    assert await store.key_digests(owner) == Credentials(b"third", b"second", 2_000)


async def test_a_key_is_not_rotated_under_another_name_or_id(store: TaskStore, owner: str) -> None:
    assert not await store.rotate_key(owner, "not-its-name", b"x", 1)
    assert not await store.rotate_key(str(ULID()), "owner-one", b"x", 1)
    assert await store.key_digests(owner) == Credentials(b"digest-owner-one", None, None)


async def test_a_missing_signing_secret_is_stored_once(store: TaskStore, owner: str) -> None:
    """An owner from before signing secrets gets the one offered; a later offer changes
    nothing, and a plain read stores nothing."""
    assert await store.signing_secrets(owner) == Credentials(None, None, None)
    assert await store.signing_secrets(owner, b"first") == Credentials(b"first", None, None)
    assert await store.signing_secrets(owner, b"second") == Credentials(b"first", None, None)
    assert await store.signing_secrets(str(ULID()), b"x") is None


async def test_rotate_signing_reseals_the_current_secret_in_one_transaction(
    store: TaskStore, owner: str
) -> None:
    await store.signing_secrets(owner, b"first")
    seen: list[bytes | None] = []

    def reseal(current: bytes | None) -> tuple[bytes | None, bytes]:
        seen.append(current)
        return b"previous:" + (current or b""), b"new"

    assert await store.rotate_signing(owner, "owner-one", 9_000, reseal)
    assert seen == [b"first"]
    assert await store.signing_secrets(owner) == Credentials(b"new", b"previous:first", 9_000)


async def test_rotate_signing_of_an_owner_without_a_secret_passes_none(
    store: TaskStore, owner: str
) -> None:
    seen: list[bytes | None] = []

    def reseal(current: bytes | None) -> tuple[bytes | None, bytes]:
        seen.append(current)
        return None, b"new"

    assert await store.rotate_signing(owner, "owner-one", 9_000, reseal)
    assert seen == [None]
    assert await store.signing_secrets(owner) == Credentials(b"new", None, 9_000)


async def test_rotate_signing_of_an_unknown_owner_calls_nothing(
    store: TaskStore, owner: str
) -> None:
    def reseal(current: bytes | None) -> tuple[bytes | None, bytes]:
        raise AssertionError("called")

    assert not await store.rotate_signing(owner, "not-its-name", 1, reseal)
    assert not await store.rotate_signing(str(ULID()), "owner-one", 1, reseal)


async def test_an_owner_with_active_tasks_is_not_deleted(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await add(store, owner, due=now + 60_000)
    record = await store.get_owner(owner, "owner-one")
    assert record is not None and record.tasks_in_queue == 1
    assert await store.delete_owner(owner, "owner-one") is DeleteOutcome.HAS_TASKS
    assert await store.delete_owner(owner, "not-its-name") is DeleteOutcome.NOT_FOUND
    assert await store.get(owner, row.id) is not None


async def test_deleting_an_owner_deletes_its_finished_tasks(store: TaskStore, owner: str) -> None:
    now = await store.now()
    row = await add(store, owner, due=now + 60_000)
    revoked = await store.change(owner, row.id, lambda _row: Change(state="REVOKED"))
    assert isinstance(revoked, QueueRow)
    other = await make_owner(store, "owner-two")
    kept = await add(store, other, due=now + 60_000)
    assert await store.delete_owner(owner, "owner-one") is DeleteOutcome.DELETED
    assert await store.get_owner(owner, "owner-one") is None
    assert await store.reload(row.id) is None
    assert await store.reload(kept.id) is not None
    assert await store.delete_owner(owner, "owner-one") is DeleteOutcome.NOT_FOUND
    assert await store.active_counts() == {other: (1, 1)}
