"""What runs once before the server or a restore uses a database (SPEC §10.9).

The database keeps a check value sealed with the cipher key, so a wrong `CIPHER_KEY` or a
lost key file stops start-up with one line instead of a server that answers 500 per row.
`serve` runs this before uvicorn starts, on either store, so a database that cannot be opened
or a wrong key is one line and exit status 2 (not a worker's traceback), and in cluster mode
the key file is created once instead of in every worker at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from tasks_server.codec import TaskCodec
from tasks_server.crypto import Cipher, DecryptionError, KeyFileError, key_file_for
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import CipherCheck, StoreOpenError, StoreUnavailable, TaskStore

log = logging.getLogger(__name__)

_CHECK_VALUE = b"tasks-server cipher check v1"
_CHECK_AD = "meta:cipher_check"


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line to print (exit status 2)."""


class KeyMismatch(StartupError):
    """The cipher key cannot open this database's data."""


def verifier(cipher: Cipher, *, source: str) -> CipherCheck:
    """The check `TaskStore.check_cipher` runs: raise KeyMismatch unless `cipher` opens this
    database; the check value to record when there is none yet.

    A database from before the check value exists is accepted when the key opens one of its
    sealed rows (or it has none).
    """

    def check(stored: bytes | None, sample: tuple[str, bytes] | None) -> bytes | None:
        try:
            if stored is not None:
                cipher.decrypt(stored, _CHECK_AD)
                return None
            if sample is not None:
                TaskCodec(cipher).open(sample[1], sample[0], "request")
        except DecryptionError:
            message = f"{source} does not match the database: its data does not open"
            raise KeyMismatch(message) from None
        return cipher.encrypt(_CHECK_VALUE, _CHECK_AD)

    return check


def key_source(settings: Settings) -> str:
    return (
        "CIPHER_KEY"
        if settings.cipher_key
        else f"the key file {key_file_for(settings.path_sqlite)}"
    )


def open_cipher(settings: Settings, db_path: Path, *, has_data: bool) -> Cipher:
    """The configured key; a key file is generated only for a database without data."""
    try:
        return Cipher.for_database(settings.cipher_key, db_path, create=not has_data)
    except KeyFileError as exc:
        raise KeyMismatch(f"{exc}, and the database has data it sealed") from None


def prepare(settings: Settings) -> None:
    """Create or migrate the database, then check (or record) the cipher check value."""
    asyncio.run(_prepare(settings))


async def _prepare(settings: Settings) -> None:
    store = build_store(settings)
    try:
        await store.open()
    except StoreOpenError as exc:
        raise StartupError(str(exc)) from None
    try:
        await checked_cipher(store, settings)
    finally:
        await store.close()


async def checked_cipher(store: TaskStore, settings: Settings) -> Cipher:
    """The configured cipher, once it is known to open this database (KeyMismatch if not);
    keys the database held in plain text are then digested with it (SPEC §15.7)."""
    try:
        has_data = await store.has_data()
        cipher = open_cipher(settings, settings.path_sqlite, has_data=has_data)
        await store.check_cipher(verifier(cipher, source=key_source(settings)))
        if digested := await store.digest_plain_keys(cipher):
            log.info("digested %d stored keys", digested, extra={"action": "keys_digested"})
    except (StoreOpenError, StoreUnavailable, OSError) as exc:
        raise StartupError(f"cannot check the database: {exc}") from None
    return cipher
