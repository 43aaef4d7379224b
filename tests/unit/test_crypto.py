import stat
from pathlib import Path

import pytest

from tasks_server.crypto import Cipher, DecryptionError


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
