"""Owner signing secrets (Standard Webhooks): creation, rotation, and the lookup for signing.

A secret is ``whsec_<base64 of 32 random bytes>``; the raw bytes are the HMAC-SHA256 key. It
is stored sealed with the owner id and column as associated data. After a rotation the old
secret stays in the previous column until its grace ends, and attempts are signed with both,
so receivers can switch over. Lookups are cached per owner, with each key's keyed HMAC state
(`signer`) that signing copies: a rotation in this process evicts both at once, and entries
expire after `CACHE_TTL_MS` for rotations by other processes.
While an owner's keys are being read, every other attempt of that owner awaits the same
read: a burst of a thousand attempts costs one database read, not a thousand.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from tasks_server.crypto import Cipher
from tasks_server.executor.options import signer
from tasks_server.store.base import TaskStore
from tasks_server.timeutil import now_ms

PREFIX = "whsec_"
SECRET_BYTES = 32
CACHE_TTL_MS = 5_000
CURRENT, PREVIOUS = "signing_secret", "previous_signing_secret"


def encode(raw: bytes) -> str:
    return PREFIX + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class _Entry:
    keys: tuple[bytes, ...]
    signers: dict[bytes, hmac.HMAC]  # each key's keyed state, made once per read
    valid_until: int


class SigningKeys:
    """Seals new secrets, rotates them, and answers which keys sign an owner's attempts."""

    def __init__(self, store: TaskStore, cipher: Cipher, clock: Callable[[], int] = now_ms) -> None:
        self._store = store
        self._cipher = cipher
        self._entries: dict[str, _Entry] = {}
        self._reading: dict[str, asyncio.Future[tuple[bytes, ...]]] = {}
        self.clock = clock

    def new(self, owner_id: str, column: str = CURRENT) -> tuple[str, bytes]:
        """A fresh secret as shown to the owner, and its blob sealed for `column`."""
        raw = secrets.token_bytes(SECRET_BYTES)
        return encode(raw), self._seal(raw, owner_id, column)

    async def for_owner(self, owner_id: str) -> tuple[bytes, ...]:
        """The raw keys to sign with: the current one first, then the previous during grace.

        An owner created before signing secrets gets one now. Empty: no such owner.
        """
        entry = self._entries.get(owner_id)
        if entry is not None and self.clock() < entry.valid_until:
            return entry.keys
        reading = self._reading.get(owner_id)
        if reading is None:
            reading = self._reading[owner_id] = asyncio.ensure_future(self._read(owner_id))
            reading.add_done_callback(lambda done: self._read_done(owner_id, done))
        return await asyncio.shield(reading)

    def _read_done(self, owner_id: str, done: asyncio.Future[tuple[bytes, ...]]) -> None:
        if self._reading.get(owner_id) is done:
            del self._reading[owner_id]

    async def _read(self, owner_id: str) -> tuple[bytes, ...]:
        now = self.clock()
        stored = await self._store.signing_secrets(owner_id)
        if stored is not None and stored.current is None:
            stored = await self._store.signing_secrets(owner_id, self.new(owner_id)[1])
        if stored is None or stored.current is None:
            self.forget(owner_id)
            return ()
        keys: tuple[bytes, ...] = (self._open(stored.current, owner_id, CURRENT),)
        valid_until = now + CACHE_TTL_MS
        until = stored.previous_until
        if stored.previous is not None and until is not None and now < until:
            keys += (self._open(stored.previous, owner_id, PREVIOUS),)
            valid_until = min(valid_until, until)
        if self._reading.get(owner_id) is asyncio.current_task():  # not forgotten meanwhile
            self._entries[owner_id] = _Entry(keys, {key: signer(key) for key in keys}, valid_until)
        return keys

    def signer(self, owner_id: str, key: bytes) -> hmac.HMAC:
        """`key`'s keyed HMAC state for signing (a copy): kept with the owner's cached keys,
        keyed anew when they are not cached (forgotten since they were read)."""
        entry = self._entries.get(owner_id)
        state = entry.signers.get(key) if entry is not None else None
        return signer(key) if state is None else state

    async def rotate(self, owner_id: str, name: str, grace_ms: int) -> str | None:
        """A new secret; the old one keeps signing for `grace_ms`. None: no such owner."""
        shown, sealed = self.new(owner_id)

        def reseal(current: bytes | None) -> tuple[bytes | None, bytes]:
            if current is None:
                return None, sealed
            raw = self._open(current, owner_id, CURRENT)
            return self._seal(raw, owner_id, PREVIOUS), sealed

        rotated = await self._store.rotate_signing(owner_id, name, self.clock() + grace_ms, reseal)
        self.forget(owner_id)
        return shown if rotated else None

    def forget(self, owner_id: str) -> None:
        """Drop what is cached, and let a read under way serve only those awaiting it."""
        self._entries.pop(owner_id, None)
        self._reading.pop(owner_id, None)

    def _seal(self, raw: bytes, owner_id: str, column: str) -> bytes:
        return self._cipher.encrypt(raw, _bound(owner_id, column))

    def _open(self, blob: bytes, owner_id: str, column: str) -> bytes:
        return self._cipher.decrypt(blob, _bound(owner_id, column))


def _bound(owner_id: str, column: str) -> str:
    """The associated data: a blob opens only for its owner and column."""
    return f"{owner_id}:owners.{column}"
