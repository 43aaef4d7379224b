"""The original Bun server's SQLite database, read-only, in either of its schemas (for
`tasks-server import-original`; the only SQL on a database not ours).

Until 1.0.0-beta.3 owners live in table `owner` and tasks point at them by `ownerId`; from
beta.4 on ("Refactor from owner to task") the same rows are table `task` and `taskId`. A
task's request is its `config` row (same id), most of its values encrypted (`cipher`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The queue row's columns, then every config column (`c.*`): names as the original has them.
_TASKS = """
SELECT q.id, q.{owner} AS ownerId, q.state, q.statusCode, q.createdAt, q.estimateEndAt,
       q.estimateExecutionAt, q.response, q.metadata, c.*
  FROM queue AS q JOIN config AS c ON c.id = q.id
 ORDER BY q.createdAt, q.id
"""
_VERSIONS = {"owner": ("1.0.0-beta.3", "ownerId"), "task": ("1.0.0-beta.4", "taskId")}


class NotOriginal(Exception):
    """The file is not a database of the original tasks-server (the message says why)."""


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str
    key_hash: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Database:
    version: str  # the schema's first release
    owners: list[Owner]
    tasks: list[dict[str, Any]]  # queue and config columns of each task, by name


def read(path: Path) -> Database:
    """Every owner and task of the database at `path`; NotOriginal when it is none."""
    if not path.is_file():
        raise NotOriginal(f"{path} is not a file")
    try:
        with _connect(path) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            found = [name for name in _VERSIONS if name in tables]
            if not found or not {"queue", "config"} <= tables:
                raise NotOriginal(f"{path} has no owner/task, queue and config tables")
            version, owner_column = _VERSIONS[found[0]]
            owners = [
                Owner(*row)
                for row in conn.execute(f"SELECT id, name, key, createdAt FROM {found[0]}")
            ]
            conn.row_factory = sqlite3.Row
            tasks = [dict(row) for row in conn.execute(_TASKS.format(owner=owner_column))]
    except sqlite3.DatabaseError as exc:
        raise NotOriginal(f"{path} is not a database of the original: {exc}") from None
    return Database(version, owners, tasks)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    # Read-only, but not immutable: the original exits without closing its database, so its
    # last writes may still be in the -wal file beside it.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        yield conn
