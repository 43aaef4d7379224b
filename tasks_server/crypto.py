"""Encryption at rest: AES-256-GCM with the row id bound as associated data.

Binding the id means a blob copied onto another row does not decrypt. The key comes from
CIPHER_KEY through HKDF; without one, a random key is generated once and kept in a 0600
file beside the database.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

_NONCE = 12
_INFO = b"tasks-server at-rest v1"


class DecryptionError(Exception):
    """A blob does not decrypt with this key and row id (wrong CIPHER_KEY or tampering)."""


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str) -> Cipher:
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
        return cls(kdf.derive(secret.encode()))

    @classmethod
    def for_database(cls, secret: str | None, db_path: Path) -> Cipher:
        """From CIPHER_KEY, or from the key file beside the database (created when missing)."""
        if secret:
            return cls.from_secret(secret)
        key_file = db_path.with_name(db_path.name + ".key")
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            log.warning(
                "CIPHER_KEY is not set: generated a key in %s; keep it with the database "
                "and its backups, or set CIPHER_KEY",
                key_file,
                extra={"action": "cipher_key_generated"},
            )
        return cls(base64.b64decode(key_file.read_text().strip()))

    def encrypt(self, plaintext: bytes, row_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, row_id.encode())

    def decrypt(self, blob: bytes, row_id: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], row_id.encode())
        except InvalidTag:
            raise DecryptionError(f"cannot decrypt data of {row_id}") from None
