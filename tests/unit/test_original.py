"""Reading, decrypting and mapping the original's database (tasks_server/original), on the
fixtures the original wrote itself (tests/fixtures/original/RECIPE.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tasks_server.models.queues import QueueRegistration
from tasks_server.original import keys, mapping
from tasks_server.original.cipher import OriginalCipher, WrongKey
from tasks_server.store import original as source

FIXTURES = Path(__file__).parents[1] / "fixtures" / "original"
VERSIONS = {"beta.3": "1.0.0-beta.3", "beta.4": "1.0.0-beta.4"}
TARGET = "http://127.0.0.77:47391"
NOW = 1_900_000_000_000  # after every time in the fixtures


def manifest(version: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{version}.json").read_text())  # type: ignore[no-any-return]


def rows(version: str) -> dict[str, dict[str, Any]]:
    """The fixture's tasks by the label its recipe gave them."""
    by_id = {row["id"]: row for row in source.read(FIXTURES / f"{version}.db").tasks}
    return {label: by_id[queue_id] for label, queue_id in manifest(version)["tasks"].items()}


def mapped(version: str, label: str, now: int = NOW) -> mapping.Task:
    row = rows(version)[label]
    cipher = OriginalCipher(manifest(version)["cipher_key"])
    return mapping.task(row, lambda value: cipher.open(value, row["id"]), now)


def original_enc(value: str, queue_id: str, cipher_key: str, iv: bytes | None = None) -> str:
    """The original's `enc` (src/utils/crypto.ts), to write rows the fixtures lack: its IV
    derived from the key as up to 1.0.0-beta.4, or a given (random) one as after."""
    digest = hashlib.sha256(f"cipher://{queue_id}{cipher_key}".encode()).digest()
    iv = iv or digest[:12]
    sealed = AESGCM(digest).encrypt(iv, value.encode(), None)
    return f"{iv.hex()}:{sealed[:-16].hex()}:{sealed[-16:].hex()}"


@pytest.mark.parametrize("version", VERSIONS)
def test_either_schema_is_read_with_every_owner_and_task(version: str) -> None:
    database = source.read(FIXTURES / f"{version}.db")
    made = manifest(version)
    assert database.version == VERSIONS[version]
    assert {o.id for o in database.owners} == {o["id"] for o in made["owners"].values()}
    assert {o.name for o in database.owners} == {"alice-app", "bob-app", "carol-idle"}
    assert all(o.key_hash.startswith("$argon2id$") for o in database.owners)
    assert {t["id"] for t in database.tasks} == set(made["tasks"].values())
    alice = made["owners"]["alice"]["id"]
    assert {t["ownerId"] for t in database.tasks} == {alice, made["owners"]["bob"]["id"]}


def test_a_file_that_is_not_such_a_database_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not sqlite at all" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE queue (id TEXT)")
    for path, says in (
        (text, "is not a database of the original"),
        (other, "has no owner/task, queue and config tables"),
        (tmp_path / "missing.db", "is not a file"),
    ):
        with pytest.raises(source.NotOriginal, match=says):
            source.read(path)


def test_values_open_with_the_original_key_only() -> None:
    row = rows("beta.3")["waiting"]
    assert OriginalCipher(manifest("beta.3")["cipher_key"]).open(row["url"], row["id"]) == (
        f"{TARGET}/waiting"
    )
    with pytest.raises(WrongKey):
        OriginalCipher("another key").open(row["url"], row["id"])
    with pytest.raises(WrongKey):  # another task's value: the id is part of the key
        OriginalCipher(manifest("beta.3")["cipher_key"]).open(row["url"], "X" + row["id"][1:])


def test_values_with_a_random_iv_open_too() -> None:
    sealed = original_enc("http://127.0.0.1:1/x", "Q1", "k", iv=os.urandom(12))
    assert OriginalCipher("k").open(sealed, "Q1") == "http://127.0.0.1:1/x"


def test_without_a_cipher_key_the_original_used_undefined() -> None:
    sealed = original_enc("http://127.0.0.1:1/x", "Q1", "undefined")
    assert OriginalCipher("undefined").open(sealed, "Q1") == "http://127.0.0.1:1/x"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_waiting_task_keeps_its_request_time_and_metadata(version: str) -> None:
    task = mapped(version, "waiting", now=0)
    row = rows(version)["waiting"]
    assert (task.state, task.due, task.paused_at) == ("RUNNING", row["estimateExecutionAt"], None)
    assert (task.retry_count, task.retry_limit, task.attempts) == (0, 2, 0)
    assert task.document["httpRequest"] == {
        "url": f"{TARGET}/waiting",
        "method": "POST",
        "query": {"page": "1"},
        "headers": {"X-Custom": "one"},
        "data": {"greeting": "hello", "count": 3},
    }
    config = task.document["config"]
    assert (config["executionDelay"], config["retry"], config["retryInterval"]) == (
        3_600_000,
        2,
        1000,
    )
    assert task.metadata == {"purpose": "waiting"}
    reg = QueueRegistration.model_validate(task.document, context={"check_future": False})
    assert reg.config.retry == 2 and reg.http_request.data == {"greeting": "hello", "count": 3}


def test_credentials_text_bodies_cookies_and_exact_times_are_kept() -> None:
    task = mapped("beta.3", "waiting_at")
    request = task.document["httpRequest"]
    assert request["data"] == "plain text body"
    assert request["authBasic"] == {"username": "user", "password": "secret-pass"}
    assert request["cookie"] == [{"name": "session", "value": "abc"}]
    assert task.document["config"]["executeAt"] == 4_102_444_800_000
    assert "executionDelay" not in task.document["config"]
    assert task.due == 4_102_444_800_000


def test_an_overdue_waiting_task_is_due_now() -> None:
    assert mapped("beta.3", "waiting").due == NOW


@pytest.mark.parametrize("version", VERSIONS)
def test_a_retrying_task_keeps_its_progress_and_loses_the_originals_own_headers(
    version: str,
) -> None:
    row = rows(version)["retrying"]
    task = mapped(version, "retrying", now=0)
    assert (task.retry_count, task.retry_limit, task.attempts, task.status_code) == (1, 3, 1, 500)
    assert task.due == row["estimateNextRetryAt"] > row["estimateExecutionAt"]
    # The original wrote its X-Tasks-* headers over the owner's on the retry.
    assert "headers" not in task.document["httpRequest"]


def test_a_paused_task_keeps_the_time_it_had_left() -> None:
    task = mapped("beta.4", "paused")
    row = rows("beta.4")["paused"]
    assert task.state == "PAUSED"
    assert (task.paused_at, task.end_at) == (row["estimateEndAt"], row["estimateEndAt"])
    assert task.due == row["estimateExecutionAt"]  # not moved: resume counts from paused_at


def test_finished_tasks_are_history_with_their_response() -> None:
    success, error, revoked = (mapped("beta.3", label) for label in ("success", "error", "revoked"))
    assert (success.state, success.status_code, success.response) == ("SUCCESS", 200, b"ok")
    assert (success.attempts, success.end_at > 0) == (1, True)
    assert (error.state, error.status_code, error.response, error.attempts) == (
        "ERROR",
        500,
        b"boom",
        2,
    )
    assert (revoked.state, revoked.response, revoked.attempts) == ("REVOKED", None, 0)


def _row(**values: Any) -> dict[str, Any]:
    """A config row as the original writes one for a plain GET, with `values` over it."""
    queue_id, key = "1A250FA96521796654929490", "k"
    base: dict[str, Any] = dict.fromkeys(
        [
            *mapping._REQUEST_JSON,
            *mapping._CONFIG_JSON,
            *mapping._CONFIG_TEXT,
            *mapping._CONFIG_PLAIN,
            *mapping._CONFIG_FLAGS,
            *("data", "cookie", "metadata", "response", "executeAt", "timeoutAt", "retryAt"),
            *("certStatus", "hsts", "haProxyClientIp", "haProxyProtocol"),
        ]
    )
    base |= {
        "id": queue_id,
        "ownerId": "01M98FN4T70GGTSR6VXZ1WWSSE",
        "state": "RUNNING",
        "statusCode": 0,
        "createdAt": 1,
        "estimateEndAt": 0,
        "estimateExecutionAt": 5,
        "url": original_enc("http://127.0.0.1:1/x", queue_id, key),
        "method": "GET",
        "executionDelay": 4,
        "retry": 0,
        "retrying": 0,
        "retryCount": 0,
        "retryLimit": 0,
        "retryInterval": 0,
        "retryExponential": 1,
        "estimateNextRetryAt": 0,
        "ignoreStatusCode": "[]",
        "location": 1,
        "sessionId": 1,
        "traceResponseData": 1,
    }
    sealed = {
        name: original_enc(value, queue_id, key) if isinstance(value, str) else value
        for name, value in values.items()
    }
    return base | sealed


def _map(row: dict[str, Any]) -> mapping.Task:
    cipher = OriginalCipher("k")
    return mapping.task(row, lambda value: cipher.open(value, row["id"]), 0)


def test_the_originals_quirks_are_undone() -> None:
    # haProxyProtocol true is written into haProxyClientIp as 1; hsts true as 1.
    config = _map(_row(haProxyClientIp=1, hsts=1, certStatus=1)).document["config"]
    assert (config["haProxyProtocol"], config["hsts"], config["certStatus"]) == (True, True, True)
    assert "haProxyClientIp" not in config
    config = _map(_row(haProxyClientIp="127.0.0.9", hsts='"aGVsbG8="')).document["config"]
    assert (config["haProxyClientIp"], config["hsts"]) == ("127.0.0.9", "aGVsbG8=")
    # With no retry, the original's retryInterval 0 (refused here) is not carried over.
    assert "retryInterval" not in config and "retry" not in config


def test_text_json_and_exact_times_as_the_original_wrote_them() -> None:
    task = _map(
        _row(
            data='"just a string"',
            cookie=base64.b64encode(b"session=abc").decode(),
            executeAt=None,
            retryAt=None,
            timeoutAt=None,
        )
        | {"retryAt": "Dec 12 2030 12:12:12 AM +07:00", "timeoutAt": "1900000000000"}
    )
    request, config = task.document["httpRequest"], task.document["config"]
    assert request["data"] == '"just a string"'  # JSON, but not an object or a list
    assert request["cookie"] == "c2Vzc2lvbj1hYmM="
    assert config["retryAt"] == "Dec 12 2030 12:12:12 AM +07:00"
    assert config["timeoutAt"] == 1_900_000_000_000


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown state 'LOST'"):
        _map(_row() | {"state": "LOST"})


def test_the_originals_key_hashes_verify_with_argon2() -> None:
    made = manifest("beta.4")
    hashes = {o.id: o.key_hash for o in source.read(FIXTURES / "beta.4.db").owners}
    alice = made["owners"]["alice"]
    assert keys.verify(hashes[alice["id"]], alice["key"])
    assert not keys.verify(hashes[alice["id"]], made["owners"]["bob"]["key"])
    assert not keys.verify("$2b$10$not-an-argon2-hash", alice["key"])
    assert not keys.is_argon2("$2b$10$abc") and keys.is_argon2(hashes[alice["id"]])


def test_rows_still_in_the_write_ahead_log_are_read(tmp_path: Path) -> None:
    """The original runs in WAL mode and exits without closing its database, so its last
    writes may still be in the -wal file beside it."""
    copy = tmp_path / "tasks.db"
    copy.write_bytes((FIXTURES / "beta.3.db").read_bytes())
    queue_id = manifest("beta.3")["tasks"]["paused"]
    writer = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA journal_mode = WAL')\n"
        "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "conn.execute(\"UPDATE queue SET state = 'RUNNING' WHERE id = ?\", (sys.argv[2],))\n"
        "os._exit(0)  # no close, no checkpoint\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(copy), queue_id], check=True, timeout=60)
    assert Path(f"{copy}-wal").stat().st_size > 0
    by_id = {row["id"]: row for row in source.read(copy).tasks}
    assert by_id[queue_id]["state"] == "RUNNING"
