"""Owner keys: generation, digests, and authentication of requests.

A key is 64 random characters (~380 bits), so a SHA-256 digest is as strong as a slow
password hash would be, and lets authentication cost microseconds. Digests never change for
an owner id (ids are never reused), so they are cached; deletion evicts the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from starlette.requests import Request

from tasks_server.api.errors import ApiError
from tasks_server.store.base import TaskStore

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64
_BEARER = re.compile(rf"Bearer ([A-Za-z0-9]{{{KEY_LENGTH}}})")
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def new_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_ulid(value: str) -> bool:
    return _ULID.fullmatch(value) is not None


class Authenticator:
    """Checks the bearer key of a request against its owner's stored digest."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._digests: dict[str, bytes] = {}

    async def owner_id(self, request: Request) -> str:
        """The authenticated owner id; 403 for bad headers or unknown owner, 401 for a wrong key."""
        match = _BEARER.fullmatch(request.headers.get("authorization", ""))
        owner_id = request.headers.get("x-tasks-owner-id", "")
        if match is None or not is_ulid(owner_id):
            raise ApiError(403)
        stored = self._digests.get(owner_id)
        if stored is None:
            stored = await self._store.key_digest(owner_id)
            if stored is None:
                raise ApiError(403)
            self._digests[owner_id] = stored
        if not hmac.compare_digest(digest(match.group(1)), stored):
            raise ApiError(401)
        return owner_id

    def forget(self, owner_id: str) -> None:
        self._digests.pop(owner_id, None)
