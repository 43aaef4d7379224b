"""Owner keys: generation, digests, and authentication of requests.

A key is 64 random characters (~380 bits), so a SHA-256 digest is as strong as a slow
password hash would be, and lets authentication cost microseconds. Digests are cached per
owner. A key rotated by another process sharing the database is seen because a key that
does not match the cache is checked once more against the store before the 401, and
because entries expire after `CACHE_TTL_MS` (so a key replaced elsewhere stops working once
its grace ends). The previous key's end of grace is checked on every request.

An owner imported from the original (SPEC §19.1) has no digest yet: its key is checked once
against the original's argon2 hash, which its digest then replaces. The original's later
header name, `X-Task-Id`, is accepted for `X-Tasks-Owner-Id`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from tasks_server.api.errors import ApiError
from tasks_server.original import keys
from tasks_server.store.base import Credentials, TaskStore
from tasks_server.timeutil import now_ms

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64
_BEARER = re.compile(rf"Bearer ([A-Za-z0-9]{{{KEY_LENGTH}}})")
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
CACHE_TTL_MS = 5_000


def new_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_ulid(value: str) -> bool:
    return _ULID.fullmatch(value) is not None


def bearer_matches(request: Request, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>` (constant time)."""
    given = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(given, f"Bearer {expected}".encode())


@dataclass(frozen=True, slots=True)
class _Entry:
    digests: Credentials
    loaded_at: int

    def accepts(self, key_digest: bytes, now: int) -> bool:
        stored = self.digests
        if stored.current is not None and hmac.compare_digest(key_digest, stored.current):
            return True
        in_grace = stored.previous_until is not None and now < stored.previous_until
        return (
            in_grace
            and stored.previous is not None
            and hmac.compare_digest(key_digest, stored.previous)
        )


class Authenticator:
    """Checks the bearer key of a request against its owner's stored digests."""

    def __init__(self, store: TaskStore, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._entries: dict[str, _Entry] = {}
        self.clock = clock
        # One argon2 check at a time: each takes 64 MiB and a tenth of a second.
        self._argon2 = asyncio.Lock()

    async def owner_id(self, request: Request) -> str:
        """The authenticated owner id; 403 for bad headers or unknown owner, 401 for a wrong key."""
        match = _BEARER.fullmatch(request.headers.get("authorization", ""))
        headers = request.headers
        owner_id = headers.get("x-tasks-owner-id") or headers.get("x-task-id", "")
        if match is None or not is_ulid(owner_id):
            raise ApiError(403)
        key_digest, now = digest(match.group(1)), self.clock()
        entry = self._entries.get(owner_id)
        fresh = entry is None or now - entry.loaded_at >= CACHE_TTL_MS
        if entry is None or fresh:
            entry = await self._load(owner_id, now)
        if entry.accepts(key_digest, now):
            return owner_id
        # The key may have been rotated by another process since the entry was cached.
        if not fresh and (await self._load(owner_id, now)).accepts(key_digest, now):
            return owner_id
        if await self._adopt_original(owner_id, match.group(1), key_digest):
            return owner_id
        raise ApiError(401)

    async def _adopt_original(self, owner_id: str, key: str, key_digest: bytes) -> bool:
        """Whether `key` opens the original's hash of an imported owner's key, which its
        digest then replaces."""
        key_hash = await self._store.original_key(owner_id)
        if key_hash is None:
            return False
        async with self._argon2:
            if not await asyncio.to_thread(keys.verify, key_hash, key):
                return False
        await self._store.adopt_key(owner_id, key_hash, key_digest)
        self.forget(owner_id)
        return True

    async def rotate(self, owner_id: str, name: str, grace_ms: int) -> str | None:
        """A new key for the owner; the old one works `grace_ms` longer. None: no such owner."""
        key = new_key()
        if not await self._store.rotate_key(owner_id, name, digest(key), self.clock() + grace_ms):
            return None
        self.forget(owner_id)
        return key

    async def _load(self, owner_id: str, now: int) -> _Entry:
        digests = await self._store.key_digests(owner_id)
        if digests is None:
            self.forget(owner_id)
            raise ApiError(403)
        entry = self._entries[owner_id] = _Entry(digests, now)
        return entry

    def forget(self, owner_id: str) -> None:
        self._entries.pop(owner_id, None)
