"""The original's owner keys: argon2id hashes made by `Bun.password.hash`, in the PHC string
format that argon2-cffi reads, so they are checked here as the original checked them."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()


def is_argon2(key_hash: str) -> bool:
    return key_hash.startswith("$argon2")


def verify(key_hash: str, key: str) -> bool:
    """Whether `key` is the one `key_hash` was made from (a hash we cannot read: False)."""
    try:
        return _HASHER.verify(key_hash, key)
    except (VerificationError, InvalidHashError):
        return False
