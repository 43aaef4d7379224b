"""The SQLite engine behind ``TaskStore``: one file, one writer thread with group commit.

The SQL lives in the modules beside this one (``queues``, ``owners``); this class binds them
to one ``Database`` and keeps the store's clock. Single runners hold a ``flock`` on a file
beside the database, so a dead holder's role passes at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tasks_server.files import private_dir
from tasks_server.store import idempotency as idempotent
from tasks_server.store import key_digests, meta, owners, queues, schedules
from tasks_server.store.base import (
    AttemptRow,
    CipherCheck,
    Credentials,
    Decide,
    DeleteOutcome,
    Due,
    FireOutcome,
    Idempotency,
    InsertOutcome,
    KeyDigests,
    NewTask,
    Notice,
    OwnerRecord,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    Reseal,
    Result,
    ScheduleDecide,
    ScheduleRow,
    StoreOpenError,
    StoreUnavailable,
)
from tasks_server.store.db import Database
from tasks_server.timeutil import now_ms

# A lone server clears every lease when it starts; this bounds only a crashed cluster worker's.
LEASE_MS = 60_000

# /health writes at most this often (each write is an fsync); in between it repeats the last
# write's answer.
PROBE_WRITE_S = 1.0


class FileLock:
    """A held ``flock``; released by `release()` or when the process ends."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    async def held(self) -> bool:
        """Until released: a lock on an open file cannot be taken away."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def try_lock(path: Path) -> FileLock | None:
    """Take the lock on `path` without waiting; None when another holder has it."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return FileLock(fd)


class SqliteStore:
    shared = False
    lease_ms = LEASE_MS
    # Several worker processes of one server may share the file (CLUSTER_MODE): they find
    # each other's changes by reconciling their leases, not by notices.

    @property
    def local_file(self) -> Path:
        return self.path

    def __init__(self, path: Path, *, clock: Callable[[], int] = now_ms) -> None:
        self.path = path
        self.db = Database(path)
        self._clock = clock
        self._probed_at = float("-inf")
        self._probe_failed: str | None = None

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        """Nothing to hear: see the class note."""

    async def ping(self) -> None:
        """Read, and write now and then: a full disk still serves reads."""
        await self.db.fetchone(queues.PING)
        if time.monotonic() - self._probed_at >= PROBE_WRITE_S:
            self._probed_at = time.monotonic()
            try:
                await self.db.write(meta.probe_write)
                self._probe_failed = None
            except StoreUnavailable as exc:
                self._probe_failed = str(exc)
        if self._probe_failed is not None:
            raise StoreUnavailable(self._probe_failed)

    async def now(self) -> int:
        return self._clock()

    # The start-up checks: a driver error is the database refusing to start (StoreOpenError).

    async def has_data(self) -> bool:
        with _starting():
            return await self.db.write(meta.has_data)

    async def check_cipher(self, check: CipherCheck) -> None:
        with _starting():
            await self.db.write(lambda conn: meta.check_cipher(conn, check))

    async def digest_plain_keys(self, digests: KeyDigests) -> int:
        with _starting():
            return await self.db.write(lambda conn: key_digests.digest_plain(conn, digests))

    # owners

    async def create_owner(self, **fields: Any) -> bool:
        return await owners.create_owner(self.db, **fields)

    async def key_digests(self, owner_id: str) -> Credentials | None:
        return await owners.key_digests(self.db, owner_id)

    async def rotate_key(
        self, owner_id: str, name: str, digest: bytes, previous_until: int
    ) -> bool:
        return await owners.rotate_key(self.db, owner_id, name, digest, previous_until)

    async def signing_secrets(
        self, owner_id: str, missing: bytes | None = None
    ) -> Credentials | None:
        return await owners.signing_secrets(self.db, owner_id, missing)

    async def rotate_signing(
        self, owner_id: str, name: str, previous_until: int, reseal: Reseal
    ) -> bool:
        return await owners.rotate_signing(self.db, owner_id, name, previous_until, reseal)

    async def get_owner(self, owner_id: str, name: str) -> OwnerRecord | None:
        return await owners.get_owner(self.db, owner_id, name)

    async def delete_owner(self, owner_id: str, name: str) -> DeleteOutcome:
        return await owners.delete_owner(self.db, owner_id, name)

    # tasks

    async def insert(
        self, *, idempotency: Idempotency | None = None, **fields: Any
    ) -> tuple[InsertOutcome, QueueRow | None]:
        if idempotency is None:
            return await queues.insert(self.db, **fields)

        def insert(conn: sqlite3.Connection) -> tuple[InsertOutcome, QueueRow | None]:
            return queues.insert_unit(conn, **fields)

        owner_id = fields["owner_id"]
        once = await idempotent.insert_once(self.db, insert, idempotency, owner_id=owner_id)
        return once

    async def insert_many(
        self, owner_id: str, tasks: Sequence[NewTask], *, limit: int
    ) -> InsertOutcome:
        return await queues.insert_many(self.db, owner_id, tasks, limit=limit)

    async def get(self, owner_id: str, queue_id: str) -> QueueRow | None:
        return await queues.get(self.db, owner_id, queue_id)

    async def list_tasks(self, owner_id: str, **query: Any) -> list[QueueSummaryRow]:
        return await queues.list_for_owner(self.db, owner_id, **query)

    async def ids_in_state(self, owner_id: str, state: str, limit: int) -> tuple[list[str], int]:
        return await queues.ids_in_state(self.db, owner_id, state, limit)

    async def change(
        self, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
    ) -> QueueRow | Rejected | None:
        return await queues.change(self.db, owner_id, queue_id, decide, limit=limit)

    async def delete(self, owner_id: str, queue_id: str) -> bool:
        return await queues.delete(self.db, owner_id, queue_id)

    async def attempts(self, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]:
        return await queues.attempts(self.db, queue_id, limit=limit, offset=offset)

    # schedules

    async def create_schedule(self, **fields: Any) -> ScheduleRow | None:
        return await schedules.create(self.db, **fields)

    async def get_schedule(self, owner_id: str, schedule_id: str) -> ScheduleRow | None:
        return await schedules.get(self.db, owner_id, schedule_id)

    async def list_schedules(self, owner_id: str, *, limit: int, offset: int) -> list[ScheduleRow]:
        return await schedules.list_for_owner(self.db, owner_id, limit=limit, offset=offset)

    async def change_schedule(
        self, owner_id: str, schedule_id: str, decide: ScheduleDecide
    ) -> ScheduleRow | Rejected | None:
        return await schedules.change(self.db, owner_id, schedule_id, decide)

    async def delete_schedule(self, owner_id: str, schedule_id: str) -> bool:
        return await schedules.delete(self.db, owner_id, schedule_id)

    async def due_schedules(self, *, before: int, limit: int) -> list[ScheduleRow]:
        return await schedules.due(self.db, before=before, limit=limit)

    async def fire(
        self,
        schedule: ScheduleRow,
        *,
        fire_at: int,
        next_run_at: int,
        task: NewTask,
        limit: int,
    ) -> tuple[FireOutcome, QueueRow | None]:
        return await schedules.fire(
            self.db, schedule, fire_at=fire_at, next_run_at=next_run_at, task=task, limit=limit
        )

    async def count_schedules(self) -> int:
        return await schedules.count_active(self.db)

    # the scheduler

    async def claim(self, *, holder: str, window_ms: int, lease_ms: int, limit: int) -> list[Due]:
        now = self._clock()
        return await queues.claim(
            self.db, holder=holder, now=now, horizon=now + window_ms, lease_ms=lease_ms, limit=limit
        )

    async def started(self, *, holder: str, due: Due, now: int) -> int | None:
        return await queues.started(self.db, holder=holder, due=due, now=now)

    async def record(
        self, *, holder: str, due: Due, result: Result, keep: int, callback: NewTask | None = None
    ) -> bool:
        return await queues.record(
            self.db, holder=holder, due=due, result=result, keep=keep, callback=callback
        )

    async def aborted(
        self, *, holder: str, queue_id: str, now: int, started: tuple[int, int] | None
    ) -> QueueRow | None:
        return await queues.aborted(
            self.db, holder=holder, queue_id=queue_id, now=now, started=started
        )

    async def abandon(self, *, holder: str, queue_id: str, now: int) -> None:
        await queues.abandon(self.db, holder=holder, queue_id=queue_id, now=now)

    async def reload(self, queue_id: str) -> QueueRow | None:
        return await queues.reload(self.db, queue_id)

    async def leased_versions(self, holder: str) -> dict[str, tuple[str, int]]:
        return await queues.leased_versions(self.db, holder)

    async def renew(self, holder: str, ids: list[str], lease_ms: int) -> None:
        await queues.renew(self.db, holder, ids, self._clock() + lease_ms)

    async def release(self, holder: str, queue_id: str) -> None:
        await queues.release_lease(self.db, queue_id, holder)

    async def release_holder(self, holder: str, *, now: int) -> None:
        await queues.release_leases_of(self.db, holder, now=now)

    async def release_all(self) -> None:
        await queues.release_all_leases(self.db)

    # jobs and metrics

    async def purge_finished(self, *, before: int, batch: int) -> int:
        return await queues.purge_finished(self.db, before=before, batch=batch)

    async def purge_idle_flows(self, *, before: int, batch: int) -> int:
        return await queues.purge_idle_flows(self.db, before=before, batch=batch)

    async def leader(self, name: str) -> FileLock | None:
        return try_lock(self.path.with_name(f"{self.path.name}.{name}.lock"))

    async def count_by_state(self) -> dict[str, int]:
        return await queues.count_by_state(self.db)

    async def count_overdue(self, *, now: int, late_by: int) -> int:
        return await queues.count_overdue(self.db, now=now, late_by=late_by)

    async def active_counts(self) -> dict[str, tuple[int, int]]:
        return await queues.active_counts(self.db)


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreOpenError(f"SQLite: {exc}") from exc
