"""How the original encrypts a task's values (its `src/utils/crypto.ts`).

AES-256-GCM; the key is the SHA-256 of ``"cipher://" + queue id + CIPHER_KEY``; a value is
stored as hex ``iv:ciphertext:tag``. Releases up to 1.0.0-beta.4 take the IV from that same
digest, later sources a random one: either is read from the value. The original without
`CIPHER_KEY` appended JavaScript's ``undefined``.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

UNSET = "undefined"


class WrongKey(Exception):
    """A value does not decrypt with this cipher key."""


class OriginalCipher:
    def __init__(self, cipher_key: str) -> None:
        self._cipher_key = cipher_key

    def open(self, value: str, queue_id: str) -> str:
        key = hashlib.sha256(f"cipher://{queue_id}{self._cipher_key}".encode()).digest()
        try:
            iv, ciphertext, tag = (bytes.fromhex(part) for part in value.split(":"))
            return AESGCM(key).decrypt(iv, ciphertext + tag, None).decode()
        except (ValueError, InvalidTag):
            raise WrongKey(f"a value of task {queue_id} does not decrypt") from None
