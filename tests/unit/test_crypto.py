import base64
import concurrent.futures
import hmac
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from tasks_server.crypto import Cipher, DecryptionError, KeyFileError


def test_round_trip_and_binding_to_row_id() -> None:
    cipher = Cipher.from_secret("correct horse battery staple")
    blob = cipher.encrypt(b"secret payload", "ROW1")
    assert b"secret payload" not in blob
    assert cipher.decrypt(blob, "ROW1") == b"secret payload"
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, "ROW2")
    with pytest.raises(DecryptionError):
        Cipher.from_secret("another key").decrypt(blob, "ROW1")
    assert cipher.encrypt(b"x", "ROW1") != cipher.encrypt(b"x", "ROW1")  # fresh nonces


def test_generated_key_file_is_private_and_reused(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "data" / "tasks.db"
    first = Cipher.for_database(None, db)
    key_file = tmp_path / "data" / "tasks.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "CIPHER_KEY is not set" in caplog.text
    blob = first.encrypt(b"data", "id")
    assert Cipher.for_database(None, db).decrypt(blob, "id") == b"data"
    assert Cipher.for_database("explicit", db).encrypt(b"", "id")


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        Cipher(b"short")


def _create_keys(dbs: list[str], start: Any) -> list[bytes]:
    """One creator: through the same databases as every other creator, at the same time."""
    start.wait()
    return [Cipher.for_database(None, Path(db)).encrypt(b"probe", "row") for db in dbs]


def test_concurrent_creators_all_get_the_one_key(tmp_path: Path) -> None:
    """Cluster workers starting together: each must end with the key file's one key."""
    creators, rounds = 8, 300
    dbs = [str(tmp_path / f"data-{n}" / "tasks.db") for n in range(rounds)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(creators)
        with concurrent.futures.ProcessPoolExecutor(creators, mp_context=context) as pool:
            results = list(pool.map(_create_keys, [dbs] * creators, [start] * creators))
    for n, db in enumerate(dbs):
        key = Cipher.for_database(None, Path(db))
        assert all(key.decrypt(sealed[n], "row") == b"probe" for sealed in results)
        assert [p.name for p in Path(db).parent.iterdir()] == ["tasks.db.key"]


def test_a_malformed_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "tasks.db.key").write_text(base64.b64encode(b"short").decode())
    with pytest.raises(KeyFileError, match=r"tasks\.db\.key is not usable"):
        Cipher.for_database(None, tmp_path / "tasks.db")
    with pytest.raises(KeyFileError, match="missing"):
        Cipher.for_database(None, tmp_path / "other.db", create=False)


_NONCE_CIPHER = Cipher.from_secret("nonces")


def _nonces(count: int) -> list[bytes]:
    return [_NONCE_CIPHER.encrypt(b"", "id")[:12] for _ in range(count)]


def _child_nonces(out: Any) -> None:
    out.put(_nonces(3))


def test_nonces_never_repeat_across_threads_and_forks() -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        drawn = [n for part in pool.map(_nonces, [1_000] * 4) for n in part]
    assert len(set(drawn)) == len(drawn) == 4_000
    _nonces(5)  # the parent holds a partly used buffer when it forks
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    children = [context.Process(target=_child_nonces, args=(out,)) for _ in range(2)]
    for child in children:
        child.start()
    drawn = [out.get(timeout=30), out.get(timeout=30), _nonces(3)]
    for child in children:
        child.join(timeout=30)
    assert len({n for part in drawn for n in part}) == 9


def test_key_digests_are_stable_and_keyed_by_owner_purpose_and_cipher_key() -> None:
    cipher = Cipher.from_secret("digest key")
    digest = cipher.flow_key("OWNER1", "value")
    # Stable, so stored digests are found again, by this process or another one.
    assert digest == Cipher.from_secret("digest key").flow_key("OWNER1", "value")
    others = {
        cipher.flow_key("OWNER2", "value"),
        cipher.idempotency_key("OWNER1", "value"),
        Cipher.from_secret("another key").flow_key("OWNER1", "value"),
    }
    assert len(others | {digest}) == 4
    assert "value" not in digest and len(digest) == 43  # base64url of 32 bytes


def test_key_digests_do_not_use_the_aes_key_itself() -> None:
    key = bytes(range(32))
    with_aes_key = hmac.digest(key, b"flow-key\0OWNER1\0value", "sha256")
    assert Cipher(key).flow_key("OWNER1", "value") != (
        base64.urlsafe_b64encode(with_aes_key).rstrip(b"=").decode()
    )
