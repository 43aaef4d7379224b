"""Importing the original's database into either store, then using it through the API: the
original's keys sign in (once checked with argon2, then by digest), ids answer, history is
listed, and a second run stores nothing twice (SPEC §19.1)."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from pathlib import Path

import pytest

from tasks_server.original import importer
from tasks_server.settings import Settings
from tests.conftest import MakeSettings, open_client
from tests.unit.test_original import FIXTURES, manifest

pytestmark = pytest.mark.parametrize("version", ["beta.3", "beta.4"])
FAR = 4_102_444_800_000  # 2100-01-01


def headers(owner: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}


def waiting_copy(version: str, folder: Path) -> Path:
    """The fixture with its waiting tasks due in 2100: its own times fall due an hour after
    it was made, and no attempt may run while these tests look at the tasks."""
    copy = folder / f"original-{version}.db"
    if not copy.exists():
        copy.write_bytes((FIXTURES / f"{version}.db").read_bytes())
        with sqlite3.connect(copy) as conn:
            conn.execute("UPDATE queue SET estimateExecutionAt = ? WHERE state = 'RUNNING'", (FAR,))
            conn.execute("UPDATE config SET estimateNextRetryAt = ? WHERE retrying = 1", (FAR,))
    return copy


async def run(settings: Settings, version: str, *, dry_run: bool = False) -> importer.Summary:
    key = manifest(version)["cipher_key"]
    source = waiting_copy(version, settings.path_sqlite.parent.parent)
    return await importer.run(settings, source, key, dry_run=dry_run)


async def test_owners_keep_their_keys_and_tasks_their_ids(settings: Settings, version: str) -> None:
    made = manifest(version)
    summary = await run(settings, version)
    assert (summary.owners, dict(summary.tasks), summary.skipped) == (
        3,
        {"RUNNING": 4, "PAUSED": 1, "SUCCESS": 1, "ERROR": 1, "REVOKED": 1},
        [],
    )
    alice, bob = headers(made["owners"]["alice"]), headers(made["owners"]["bob"])
    tasks = made["tasks"]
    opened = open_client(settings)
    async with opened as client:
        # Several first uses at once: each is checked by argon2, one replaces the hash.
        first = [client.get("/v1/owners/alice-app", headers=alice) for _ in range(3)]
        assert [r.status_code for r in await asyncio.gather(*first)] == [200] * 3
        owner = await client.get("/v1/owners/alice-app", headers=alice)  # by the digest
        assert owner.status_code == 200, owner.text
        assert owner.json()["tasksInQueue"] == 4  # 3 waiting (one retrying) and 1 paused
        store = opened.services.store
        assert await store.original_key(made["owners"]["alice"]["id"]) is None
        assert await store.original_key(made["owners"]["bob"]["id"]) is not None
        wrong = {**bob, "Authorization": alice["Authorization"]}
        assert (await client.get("/v1/owners/bob-app", headers=wrong)).status_code == 401
        assert (await client.get("/v1/owners/bob-app", headers=bob)).status_code == 200

        paused = (await client.get(f"/v1/queues/{tasks['paused']}", headers=alice)).json()
        assert paused["state"] == "PAUSED" and paused["estimateEndAt"] > 0
        success = (await client.get(f"/v1/queues/{tasks['success']}", headers=alice)).json()
        assert (success["state"], success["statusCode"]) == ("SUCCESS", 200)
        assert success["response"] == base64.b64encode(b"ok").decode()
        assert success["metadata"] == {"purpose": "done"}
        listed = await client.get("/v1/queues?state=ERROR", headers=alice)
        assert [q["id"] for q in listed.json()] == [tasks["error"]]
        config = (await client.get(f"/v1/queues/{tasks['retrying']}/config", headers=alice)).json()
        assert (config["retryCount"], config["retryLimit"], config["retrying"]) == (1, 3, True)
        waiting_at = await client.get(f"/v1/queues/{tasks['waiting_at']}/config", headers=alice)
        assert waiting_at.json()["httpRequest"]["authBasic"]["password"] == "***"
        # Isolation holds for imported ids too.
        assert (await client.get(f"/v1/queues/{tasks['waiting']}", headers=bob)).status_code == 404


async def test_a_second_run_and_a_dry_run_store_nothing(
    make_settings: MakeSettings, version: str
) -> None:
    settings = make_settings()
    dry = await run(settings, version, dry_run=True)
    assert (dry.owners, dry.tasks.total()) == (3, 8)
    assert "would import 3 owners and 8 tasks" in "\n".join(dry.lines())
    first = await run(settings, version)
    assert (first.owners, first.tasks.total()) == (3, 8)  # the dry run stored nothing
    again = await run(settings, version)
    assert (again.owners, again.tasks.total()) == (0, 0)
    assert len(again.skipped) == 11
    assert all(reason.endswith("already imported") for reason in again.skipped)


async def test_a_wrong_cipher_key_or_another_file_imports_nothing(
    settings: Settings, version: str, tmp_path: Path
) -> None:
    with pytest.raises(importer.ImportFailed, match="cipher key does not open"):
        await importer.run(settings, FIXTURES / f"{version}.db", "wrong", dry_run=False)
    with pytest.raises(importer.ImportFailed, match="not a database of the original"):
        await importer.run(settings, FIXTURES / f"{version}.json", "k", dry_run=False)
    summary = await run(settings, version)
    assert summary.owners == 3  # nothing was half-imported before


async def test_rows_this_server_cannot_take_are_skipped_with_the_reason(
    make_settings: MakeSettings, version: str, tmp_path: Path
) -> None:
    made = manifest(version)
    tasks, alice = made["tasks"], made["owners"]["alice"]
    source = waiting_copy(version, tmp_path)
    owners = "owner" if version == "beta.3" else "task"
    with sqlite3.connect(source) as conn:
        conn.execute(f"UPDATE {owners} SET key = '$2b$10$bcrypt' WHERE name = 'bob-app'")
        conn.execute("UPDATE config SET timeout = 10 WHERE id = ?", (tasks["success"],))
    key = made["cipher_key"]
    guarded = make_settings(destination_deny="loopback")
    refused = await importer.run(guarded, source, key, dry_run=True)
    assert f"task {tasks['waiting']}: httpRequest.url: " in "\n".join(refused.skipped)

    settings = make_settings()
    async with open_client(settings) as client:  # a name the original's owner wants
        await client.post("/v1/owners/register", json={"name": "carol-idle"})
    summary = await importer.run(settings, source, key, dry_run=False)
    assert (summary.owners, summary.tasks.total()) == (1, 6)
    assert set(summary.skipped) == {
        "owner bob-app: its key hash is not argon2",
        "owner carol-idle: the name is taken here",
        f"task {tasks['bob_waiting']}: its owner is not imported",
        f"task {tasks['success']}: its request is not valid here: config.timeout: "
        "Input should be greater than or equal to 1000",
    }
    async with open_client(settings) as client:
        assert (await client.get("/v1/owners/alice-app", headers=headers(alice))).status_code == 200
