"""Retention (SPEC §9.5): finished tasks older than RETENTION_FINISHED_MS go, attempts with them.

Every process runs the loop; only the one holding the retention lock (a ``flock`` beside the
database, as for backups) purges, and a dead holder's lock passes at the next period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from tasks_server.backup import BackupLeader, try_become_backup_leader
from tasks_server.store import queues
from tasks_server.store.db import Database
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

PERIOD_S = 60.0
BATCH = 1_000  # rows per transaction, so the purge never holds the writer for long


def lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".retention.lock")


class Retention:
    def __init__(
        self,
        db: Database,
        *,
        keep_ms: int,
        lock_path: Path,
        clock: Callable[[], int] = now_ms,
        period_s: float = PERIOD_S,
    ) -> None:
        self._db = db
        self._keep_ms = keep_ms
        self._lock_path = lock_path
        self._clock = clock
        self._period_s = period_s
        self.leader: BackupLeader | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int | None:
        """Purge what is due if this process leads; the rows deleted, or None when not."""
        if self.leader is None:
            self.leader = try_become_backup_leader(self._lock_path)
            if self.leader is None:
                return None
        before = self._clock() - self._keep_ms
        total = 0
        while (deleted := await queues.purge_finished(self._db, before=before, batch=BATCH)) > 0:
            total += deleted
            if deleted < BATCH:
                break
        if total:
            log.info("purged %d finished tasks", total, extra={"action": "retention_purged"})
        return total

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("retention purge failed", extra={"action": "retention_failed"})
            await asyncio.sleep(self._period_s)

    def start(self) -> None:
        if self._keep_ms > 0:
            self._task = asyncio.create_task(self._run_forever(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leader is not None:
            self.leader.release()
            self.leader = None
