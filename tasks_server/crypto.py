"""Encryption at rest: AES-256-GCM with the row id bound as associated data.

Binding the id means a blob copied onto another row does not decrypt. The key comes from
CIPHER_KEY through HKDF; without one, a random key is generated once and kept in a 0600
file beside the database.

Values the stores must look up by equality rather than read back (an `Idempotency-Key`, a
flow-control key) are kept as keyed digests instead (SPEC §15.7): HMAC-SHA256 under a key
derived from the AES key by HKDF, so the AES key itself serves one purpose only.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tasks_server.files import private_dir

log = logging.getLogger(__name__)

_NONCE = 12
_INFO = b"tasks-server at-rest v1"
_DIGEST_INFO = b"tasks-server key digests v1"
_NONCES_DRAWN = 4096 // _NONCE  # nonces per read of the OS random source


class _Nonces:
    """Random nonces taken from a buffer of OS randomness, refilled every few hundred.

    One read per nonce is a system call that releases the GIL: another thread (the SQLite
    writer) then takes it in the middle of an attempt. A forked child empties the buffer, so
    two processes never draw the same nonces.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._used = 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self) -> bytes:
        with self._lock:
            if self._used == len(self._buffer):
                self._buffer, self._used = os.urandom(_NONCE * _NONCES_DRAWN), 0
            start, self._used = self._used, self._used + _NONCE
            return self._buffer[start : self._used]

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._used = b"", 0


_nonces = _Nonces()


class DecryptionError(Exception):
    """A blob does not decrypt with this key and row id (wrong CIPHER_KEY or tampering)."""


class KeyFileError(Exception):
    """The key file is missing where it must exist, or does not hold a 32-byte key."""


def key_file_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".key")


def _create_key_file(key_file: Path) -> None:
    private_dir(key_file.parent)
    temp = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, key_file)
    except FileExistsError:
        return  # another process created it first: use that one
    finally:
        temp.unlink(missing_ok=True)
    log.warning(
        "CIPHER_KEY is not set: generated a key in %s; keep it with the database "
        "and its backups, or set CIPHER_KEY",
        key_file,
        extra={"action": "cipher_key_generated"},
    )


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)
        self._digest_key = _hkdf(_DIGEST_INFO).derive(key)

    @classmethod
    def from_secret(cls, secret: str) -> Cipher:
        return cls(_hkdf(_INFO).derive(secret.encode()))

    @classmethod
    def for_database(cls, secret: str | None, db_path: Path, *, create: bool = True) -> Cipher:
        """From CIPHER_KEY, or from the key file beside the database (created when missing).

        Concurrent creators (cluster workers) all end with the one key that was linked first:
        each writes a complete temp file, and `os.link` publishes it only if no key file exists.
        """
        if secret:
            return cls.from_secret(secret)
        key_file = key_file_for(db_path)
        if not key_file.exists():
            if not create:
                raise KeyFileError(f"the key file {key_file} is missing and CIPHER_KEY is not set")
            _create_key_file(key_file)
        try:
            return cls(base64.b64decode(key_file.read_text().strip(), validate=True))
        except (ValueError, OSError) as exc:
            raise KeyFileError(f"the key file {key_file} is not usable: {exc}") from None

    def encrypt(self, plaintext: bytes, row_id: str) -> bytes:
        nonce = _nonces.take()
        return nonce + self._aead.encrypt(nonce, plaintext, row_id.encode())

    def decrypt(self, blob: bytes, row_id: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], row_id.encode())
        except InvalidTag:
            raise DecryptionError(f"cannot decrypt data of {row_id}") from None

    def idempotency_key(self, owner_id: str, key: str) -> str:
        """How an owner's `Idempotency-Key` is stored and looked up."""
        return self._digest(b"idempotency-key", owner_id, key)

    def flow_key(self, owner_id: str, key: str) -> str:
        """How an owner's flow-control key is stored and looked up."""
        return self._digest(b"flow-key", owner_id, key)

    def destination(self, owner_id: str, address: str) -> str:
        """A destination's id: its circuit's, as stored and named in the API and on command
        lines (hex, so it never starts with a dash; 128 bits)."""
        return self._mac(b"destination", owner_id, address)[:16].hex()

    def _digest(self, purpose: bytes, owner_id: str, value: str) -> str:
        """Base64url of `_mac`."""
        return base64.urlsafe_b64encode(self._mac(purpose, owner_id, value)).rstrip(b"=").decode()

    def _mac(self, purpose: bytes, owner_id: str, value: str) -> bytes:
        """HMAC of purpose, owner and value (NUL-separated; neither of the first two holds
        one): equal values of two owners or two purposes never share a digest."""
        message = b"\0".join((purpose, owner_id.encode(), value.encode()))
        return hmac.digest(self._digest_key, message, "sha256")


def _hkdf(info: bytes) -> HKDF:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
