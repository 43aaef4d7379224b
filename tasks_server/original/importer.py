"""`tasks-server import-original`: the original's owners and tasks into this server's store.

Ids are kept, so clients' stored ids still answer, and a second run finds them taken and
stores nothing twice. Owners keep their keys (their argon2 hashes; see ``api.auth``).
Waiting and paused tasks keep their due time (or what they had left), retry progress and
request; finished ones are history. A request this server would refuse at registration (an
option its libcurl lacks, a file outside CERTS_DIR, a destination the guard refuses) is
skipped with the reason, as are the tasks of an owner that was not imported.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tasks_server import startup
from tasks_server.codec import TaskCodec
from tasks_server.executor.options import unsupported
from tasks_server.models.lists import listing
from tasks_server.models.queues import QueueRegistration
from tasks_server.original import keys, mapping
from tasks_server.original.cipher import UNSET, OriginalCipher, WrongKey
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store import original as source
from tasks_server.store.base import StoreOpenError, TaskStore
from tasks_server.store.imports import ImportedOwner, ImportedTask
from tasks_server.timeutil import now_ms


class ImportFailed(Exception):
    """Nothing can be imported; the message is the one line to print (exit status 2)."""


@dataclass
class Summary:
    version: str
    dry_run: bool
    owners: int = 0
    tasks: Counter[str] = field(default_factory=Counter)  # by state
    skipped: list[str] = field(default_factory=list)  # what, and why

    def lines(self) -> list[str]:
        verb = "would import" if self.dry_run else "imported"
        states = ", ".join(f"{state} {n}" for state, n in sorted(self.tasks.items())) or "none"
        return [
            f"original database: schema of {self.version}",
            f"{verb} {self.owners} owners and {self.tasks.total()} tasks ({states})",
            f"skipped {len(self.skipped)}",
            *(f"  {reason}" for reason in self.skipped),
        ]


async def run(settings: Settings, path: Path, cipher_key: str | None, *, dry_run: bool) -> Summary:
    """Import the database at `path` into the configured store (nothing when `dry_run`)."""
    try:
        database = source.read(path)
    except source.NotOriginal as exc:
        raise ImportFailed(str(exc)) from None
    cipher = OriginalCipher(cipher_key or settings.cipher_key or UNSET)
    if database.tasks:
        first = database.tasks[0]
        try:
            cipher.open(first["url"], first["id"])
        except WrongKey:
            raise ImportFailed(
                "the cipher key does not open the original's data (--cipher-key, or "
                "CIPHER_KEY as the original had it)"
            ) from None
    summary = Summary(database.version, dry_run)
    if dry_run and settings.database_url is None and not settings.path_sqlite.exists():
        # Nothing to compare with: a scratch database stands in, so none is made here.
        with tempfile.TemporaryDirectory() as scratch:
            scratch_db = Path(scratch) / "tasks.db"
            await _into(
                settings.model_copy(update={"path_sqlite": scratch_db}), database, cipher, summary
            )
    else:
        await _into(settings, database, cipher, summary)
    return summary


async def _into(
    settings: Settings, database: source.Database, cipher: OriginalCipher, summary: Summary
) -> None:
    store = build_store(settings)
    try:
        await store.open()
    except StoreOpenError as exc:
        raise ImportFailed(str(exc)) from None
    try:
        codec = TaskCodec(await startup.checked_cipher(store, settings))
        owners = await _owners(store, database.owners, summary)
        await _tasks(store, settings, codec, cipher, database.tasks, owners, summary)
    except startup.StartupError as exc:
        raise ImportFailed(str(exc)) from None
    finally:
        await store.close()


async def _owners(store: TaskStore, owners: list[source.Owner], summary: Summary) -> set[str]:
    """Import the owners; the ids of those whose tasks can be imported."""
    ids = set()
    for owner in owners:
        if not keys.is_argon2(owner.key_hash):
            summary.skipped.append(f"owner {owner.name}: its key hash is not argon2")
            continue
        if await store.owner_name(owner.id) is not None:
            summary.skipped.append(f"owner {owner.name}: already imported")
        elif summary.dry_run or await store.import_owner(
            ImportedOwner(owner.id, owner.name, owner.key_hash, owner.created_at)
        ):
            summary.owners += 1
        else:
            summary.skipped.append(f"owner {owner.name}: the name is taken here")
            continue
        ids.add(owner.id)
    return ids


async def _tasks(
    store: TaskStore,
    settings: Settings,
    codec: TaskCodec,
    cipher: OriginalCipher,
    rows: list[dict[str, Any]],
    owners: set[str],
    summary: Summary,
) -> None:
    now, new = now_ms(), []
    for row in rows:
        queue_id = row["id"]
        if row["ownerId"] not in owners:
            summary.skipped.append(f"task {queue_id}: its owner is not imported")
            continue
        if await store.reload(queue_id) is not None:
            summary.skipped.append(f"task {queue_id}: already imported")
            continue
        try:
            task = mapping.task(row, functools.partial(cipher.open, queue_id=queue_id), now)
            reg = _registration(settings, task, now)
        except (WrongKey, ValueError) as exc:  # ValidationError is a ValueError
            summary.skipped.append(f"task {queue_id}: {_reason(exc)}")
            continue
        new.append(_sealed(codec, task, reg))
    stored = [task.id for task in new] if summary.dry_run else await store.import_tasks(new)
    taken = set(stored)
    for imported in new:
        if imported.id in taken:
            summary.tasks[imported.state] += 1
        else:  # imported by another run meanwhile
            summary.skipped.append(f"task {imported.id}: already imported")


def _registration(settings: Settings, task: mapping.Task, now: int) -> QueueRegistration:
    document = {**task.document, "metadata": task.metadata}
    context = {"now": now, "tz": settings.tz, "check_future": False}
    reg = QueueRegistration.model_validate(document, context=context)
    problems = unsupported(reg, certs_dir=settings.certs_dir, guard=settings.destination_guard)
    if problems:
        raise ValueError("; ".join(f"{p['path']}: {p['message']}" for p in problems))
    return reg


def _sealed(codec: TaskCodec, task: mapping.Task, reg: QueueRegistration) -> ImportedTask:
    metadata = None
    if task.metadata is not None:
        metadata = codec.seal_json(task.metadata, task.id, "metadata")
    return ImportedTask(
        id=task.id,
        owner_id=task.owner_id,
        state=task.state,
        created_at=task.created_at,
        status_code=task.status_code,
        estimate_execution_at=task.due,
        estimate_end_at=task.end_at,
        paused_at=task.paused_at,
        retry_count=task.retry_count,
        retry_limit=task.retry_limit,
        attempts=task.attempts,
        request=codec.seal_request(reg, task.id),
        metadata=metadata,
        response=None if task.response is None else codec.seal(task.response, task.id, "response"),
        listing=listing(reg.http_request, None),
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"its request is not valid here: {where}: {error['msg']}"
    if isinstance(exc, json.JSONDecodeError):
        return f"a value is not the JSON it should be: {exc.msg}"
    return str(exc)
