"""The store's database as a file (`TaskStore.local_file`: SQLite's), for backups and
restores: a consistent copy of it while it is written, its soundness, and the cipher check of
a copy before it replaces anything.

A failure raises ``DatabaseFileError``, one line naming the file, with the driver's error as
its cause.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tasks_server.store import meta
from tasks_server.store.base import CipherCheck
from tasks_server.store.db import DatabaseTooNew, migrate
from tasks_server.store.driver import run_to_end
from tasks_server.store.sqlite import OneConnection

__all__ = ["DatabaseFileError", "check_key", "check_sound", "copy_live"]

SELF_CONTAINED = "PRAGMA journal_mode = DELETE"  # no -wal beside the copy
INTEGRITY_CHECK = "PRAGMA integrity_check"


class DatabaseFileError(Exception):
    """A database file that cannot be copied, or is not sound, or is newer than this code."""


def copy_live(source: Path, dest: Path) -> None:
    """Copy the database `source` into the empty file `dest` while the server writes on: the
    online backup API in one step is one read transaction, so one consistent snapshot. The
    copy is self-contained (no -wal beside it) and checked sound."""
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=10)) as reader,
            contextlib.closing(sqlite3.connect(dest)) as writer,
        ):
            reader.backup(writer)
            writer.execute(SELF_CONTAINED)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"snapshot of {source} failed: {exc}") from exc
    check_sound(dest)


def check_sound(path: Path) -> None:
    """SQLite's integrity check of the file at `path`."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            findings = "; ".join(str(row[0]) for row in conn.execute(INTEGRITY_CHECK))
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"{path.name} is not a sound SQLite database: {exc}") from exc
    if findings != "ok":
        raise DatabaseFileError(f"integrity check of {path.name} failed: {findings}")


def check_key(path: Path, check_for: Callable[[bool], CipherCheck]) -> None:
    """Migrate the copy at `path`, then run the cipher check `check_for(has_data)` on it."""
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            migrate(conn)
            copy = OneConnection(conn)
            run_to_end(meta.check_cipher(copy, check_for(run_to_end(meta.has_data(copy)))))
    except (sqlite3.Error, DatabaseTooNew) as exc:
        raise DatabaseFileError(f"{path.name}: {exc}") from exc
