"""Consistent SQLite backups to a folder or S3-compatible storage, their schedule and restore.

A backup is: SQLite's online backup API into a temp file (a consistent snapshot while the
server keeps writing), ``PRAGMA integrity_check``, a ``<dbname>-<ISO time>.db.tar.gz`` archive,
then a destination that never shows a partial file under the final name (temp name, fsync,
rename; or an S3 upload, atomic by nature, verified with ``head_object``). All of it is
blocking, so the async entry points run it in a thread. Scheduled backups are a leader job:
one process of the database takes them (`BackupScheduler`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks_server import startup
from tasks_server.files import private_dir
from tasks_server.jobs import LeaderService
from tasks_server.settings import BackupMethod, Settings
from tasks_server.store import local_file
from tasks_server.store.base import CipherCheck, TaskStore

if TYPE_CHECKING:
    from tasks_server.metrics import Metrics

log = logging.getLogger(__name__)

ARCHIVE_SUFFIX = ".db.tar.gz"
# Few attempts: a failed backup is retried by the next schedule, not by hammering the endpoint.
S3_MAX_ATTEMPTS = 3
# Wake at least this often so a wall-clock jump (suspend, NTP step) cannot delay a backup much.
_MAX_SLEEP_S = 300.0


class BackupError(Exception):
    """A backup could not be taken or stored; the message says why."""


class RestoreError(Exception):
    """A restore was refused or failed; nothing was replaced."""


# --- snapshot and archive ---------------------------------------------------------------


def snapshot(db_path: Path, dest: Path) -> None:
    """A consistent, sound copy of the live database `db_path` at `dest` (BackupError if not)."""
    try:
        local_file.copy_live(db_path, _private(dest))
    except local_file.DatabaseFileError as exc:
        raise BackupError(str(exc)) from exc


def _stem(db_path: Path) -> str:
    return db_path.name.removesuffix(".db") or db_path.name


def archive_name(db_path: Path, when: datetime) -> str:
    """``<dbname>-<ISO UTC time>.db.tar.gz`` without colons, e.g. tasks-2026-11-22T07-25-31Z."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    return f"{_stem(db_path)}-{stamp}{ARCHIVE_SUFFIX}"


def pack(snapshot: Path, archive: Path, arcname: str) -> None:
    """Write a tar.gz at `archive` holding only `snapshot`, named `arcname`."""
    with _private(archive).open("wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(snapshot, arcname=arcname, recursive=False)


# --- destinations -----------------------------------------------------------------------


class Destination(Protocol):
    def put(self, archive: Path) -> str:
        """Store `archive` under its name; return where it went."""
        ...

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` backups; return what was deleted."""
        ...

    def fetch(self, name_or_key: str, dest: Path) -> None:
        """Download one backup into `dest`, an existing private file (its mode stays)."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private(path: Path) -> Path:
    """Create `path` empty with mode 0600 (refusing an existing file); return it."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _lock(path: Path) -> int:
    """An fd of `path` holding an exclusive flock: marks a temp file or folder as in use."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _remove_unless_in_use(path: Path) -> bool:
    """Remove a temp file or folder that no running backup holds locked."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return True


def _temp_prefix(db_path: Path, kind: str) -> str:
    """The name of a temp folder beside the database for a "backup" or "restore" of it, up to
    its random part."""
    return f".{db_path.name}.{kind}-"


def remove_leftovers(settings: Settings) -> None:
    """Delete temp files of backups and restores killed mid-way, beside the database and in
    the backup folder."""
    db_path = settings.path_sqlite
    leftovers = [
        path
        for kind in ("backup", "restore")
        for path in db_path.parent.glob(_temp_prefix(db_path, kind) + "*")
    ]
    if settings.backup_method_sqlite is BackupMethod.LOCAL:
        leftovers += settings.backup_path_dir_sqlite.glob(f".*{ARCHIVE_SUFFIX}.*.tmp")
    for path in leftovers:
        if _remove_unless_in_use(path):
            log.info(
                "removed %s left by an interrupted backup or restore",
                path,
                extra={"action": "backup_leftover_removed"},
            )


class LocalDestination:
    """A folder: a temp name in the same folder, fsync, then an atomic rename."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, archive: Path) -> str:
        private_dir(self.directory)
        final = self.directory / archive.name
        temp = _private(self.directory / f".{archive.name}.{secrets.token_hex(4)}.tmp")
        held = _lock(temp)
        try:
            with archive.open("rb") as src, temp.open("r+b") as out:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        finally:
            os.close(held)
        _fsync_dir(self.directory)
        return str(final)

    def backups(self) -> list[Path]:
        """Oldest first: the names sort by time."""
        return sorted(self.directory.glob(f"*{ARCHIVE_SUFFIX}"), key=lambda p: p.name)

    def prune(self, keep: int) -> list[str]:
        if keep <= 0:
            return []
        doomed = self.backups()[:-keep]
        for path in doomed:
            path.unlink(missing_ok=True)
        return [str(path) for path in doomed]

    def fetch(self, name_or_key: str, dest: Path) -> None:
        source = Path(name_or_key)
        if not source.is_absolute():
            source = self.directory / source
        if not source.is_file():
            raise FileNotFoundError(f"no backup {name_or_key!r} in {self.directory}")
        shutil.copyfile(source, dest)


class S3Destination:
    """An S3-compatible bucket (AWS, R2, GCS, MinIO…) under an optional key prefix."""

    def __init__(
        self,
        endpoint: str | None,
        bucket: str,
        prefix: str,
        access_key: str | None,
        secret_key: str | None,
        region: str | None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region or "us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    def key(self, name: str) -> str:
        if name.startswith("s3://"):
            return name.removeprefix("s3://").partition("/")[2]
        if not self.prefix or name.startswith(self.prefix + "/"):
            return name
        return f"{self.prefix}/{name}"

    def put(self, archive: Path) -> str:
        key = self.key(archive.name)
        # upload_file switches to multipart above 8 MiB; S3 shows the object only when complete
        # and the transfer manager aborts a failed multipart upload.
        self.client.upload_file(str(archive), self.bucket, key)
        size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if size != archive.stat().st_size:
            self.client.delete_object(Bucket=self.bucket, Key=key)
            raise BackupError(
                f"s3://{self.bucket}/{key} has {size} bytes, expected "
                f"{archive.stat().st_size}; deleted"
            )
        return f"s3://{self.bucket}/{key}"

    def backups(self) -> list[str]:
        """Keys directly under the prefix, oldest first."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                rest = item["Key"][len(prefix) :]
                if "/" not in rest and rest.endswith(ARCHIVE_SUFFIX):
                    keys.append(item["Key"])
        return sorted(keys, key=lambda k: k.rsplit("/", 1)[-1])

    def prune(self, keep: int) -> list[str]:
        if keep <= 0:
            return []
        doomed = self.backups()[:-keep]
        for start in range(0, len(doomed), 1000):
            chunk = doomed[start : start + 1000]
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
        return [f"s3://{self.bucket}/{key}" for key in doomed]

    def fetch(self, name_or_key: str, dest: Path) -> None:
        # Into the open file: download_file would replace `dest` with a file of its own mode.
        with dest.open("wb") as out:
            self.client.download_fileobj(self.bucket, self.key(name_or_key), out)


def destination_for(settings: Settings) -> Destination:
    if settings.backup_method_sqlite is BackupMethod.OBJECT_STORAGE:
        if not settings.backup_object_storage_bucket_name:
            raise BackupError("BACKUP_OBJECT_STORAGE_BUCKET_NAME is not set")
        return S3Destination(
            settings.backup_object_storage_endpoint,
            settings.backup_object_storage_bucket_name,
            settings.backup_object_storage_path,
            settings.backup_object_storage_access_key,
            settings.backup_object_storage_secret_key,
            settings.s3_region_name,
        )
    return LocalDestination(settings.backup_path_dir_sqlite)


def _cause(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, BackupError) else f"{type(exc).__name__}: {text}"


# --- taking a backup --------------------------------------------------------------------


def backup_now(settings: Settings, when: datetime | None = None) -> str:
    """Take one backup with the configured method (blocking); return where it went."""
    db_path = settings.path_sqlite
    when = when or datetime.now(UTC)
    try:
        if not db_path.is_file():
            raise BackupError(f"no database at {db_path}")
        destination = destination_for(settings)
        remove_leftovers(settings)
        # Beside the database, not in the system temp folder: the copy is as private as the
        # database, and a kill -9 leaves it where the next backup or start removes it.
        with tempfile.TemporaryDirectory(
            prefix=_temp_prefix(db_path, "backup"), dir=db_path.parent
        ) as tmp:
            held = _lock(Path(tmp))
            try:
                snap = Path(tmp) / db_path.name
                snapshot(db_path, snap)
                archive = Path(tmp) / archive_name(db_path, when)
                pack(snap, archive, db_path.name)
                where = destination.put(archive)
            finally:
                os.close(held)
    except Exception as exc:
        raise BackupError(f"backup of {db_path} failed: {_cause(exc)}") from exc
    if settings.backup_retention:
        # The backup is safe; a failed clean-up is retried by the next one.
        try:
            for gone in destination.prune(settings.backup_retention):
                log.info("deleted old backup %s", gone, extra={"action": "backup_pruned"})
        except Exception as exc:
            log.warning(
                "could not delete old backups: %s", _cause(exc), extra={"action": "prune_failed"}
            )
    return where


async def run_backup(
    settings: Settings, metrics: Metrics | None = None, *, when: datetime | None = None
) -> str:
    """Take one backup in a thread; count it; raise BackupError with the cause on failure."""
    try:
        where = await asyncio.to_thread(backup_now, settings, when)
    except BackupError:
        if metrics is not None:
            metrics.backups.labels(outcome="failure").inc()
        raise
    if metrics is not None:
        metrics.backups.labels(outcome="success").inc()
        metrics.last_backup.set(time.time())
    log.info("backup stored at %s", where, extra={"action": "backup_done"})
    return where


# --- schedule ---------------------------------------------------------------------------


class BackupScheduler(LeaderService[str | None]):
    """Runs a backup at each time of the cron pattern, in the backup time zone.

    Every process of the database runs one, but only the holder of the store's "backup"
    leader role backs up; the others try for the role at each fire time, so a dead leader is
    replaced. Only a local SQLite file is backed up: a shared database has its own tools.
    """

    name = "backup"

    def __init__(
        self,
        store: TaskStore,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        backup: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        super().__init__(store)
        self._cron = settings.backup_cron
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._backup = backup or (lambda: run_backup(settings, metrics))
        self._due: datetime | None = None

    def start(self) -> None:
        if self._store.local_file is not None:
            super().start()

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), in UTC."""
        after_ms = int(after.timestamp() * 1000)
        return datetime.fromtimestamp(self._cron.next_after(after_ms) / 1000, UTC)

    async def work(self) -> str | None:
        """One backup; where it went, or None when it failed (logged with its cause)."""
        try:
            return await self._backup()
        except Exception as exc:
            log.error("%s", _cause(exc), extra={"action": "backup_failed"})
            return None

    async def pause(self) -> None:
        """Until the next fire time: from the later of the last one and now, so a slow
        backup skips missed times, never repeats one."""
        now = self._now()
        self._due = self.next_fire(now if self._due is None else max(self._due, now))
        while (now := self._now()) < self._due:
            await self._sleep(min((self._due - now).total_seconds(), _MAX_SLEEP_S))


# --- restore ----------------------------------------------------------------------------


def _extract_db(archive: Path, dest: Path) -> None:
    """Copy the archive's single ``*.db`` member into `dest`; never writes any other path."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if len(members) != 1:
                raise RestoreError(
                    f"{archive.name}: expected one database file, found {len(members)} entries"
                )
            (member,) = members
            name = member.name
            if not member.isfile() or "/" in name or "\\" in name or not name.endswith(".db"):
                raise RestoreError(f"{archive.name}: unexpected entry {name!r}")
            source = tar.extractfile(member)
            assert source is not None
            with source, _private(dest).open("r+b") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RestoreError(f"{archive.name} is not a readable backup archive: {exc}") from exc


def _check(settings: Settings, restored: Path) -> None:
    """Refuse an archive that is not sound (RestoreError), or whose data the configured key
    cannot open (KeyMismatch)."""

    def check_for(has_data: bool) -> CipherCheck:
        cipher = startup.open_cipher(settings, settings.path_sqlite, has_data=has_data)
        return startup.verifier(cipher, source=startup.key_source(settings))

    try:
        local_file.check_sound(restored)
        local_file.check_key(restored, check_for)
    except local_file.DatabaseFileError as exc:
        raise RestoreError(str(exc)) from exc


def _fetch(settings: Settings, source: str, dest: Path) -> None:
    local = Path(source)
    if local.is_file():
        shutil.copyfile(local, dest)
        return
    try:
        destination_for(settings).fetch(source, dest)
    except Exception as exc:
        raise RestoreError(f"cannot fetch backup {source!r}: {_cause(exc)}") from exc


def restore(
    settings: Settings, source: str, *, force: bool = False, when: datetime | None = None
) -> Path:
    """Restore a backup (local file, a name in the backup folder, or an S3 key) into PATH_SQLITE.

    The archive is verified before anything is replaced. An existing database is refused
    unless `force`; then it (with its -wal/-shm) is kept as ``<db>.replaced-<time>``. Stop
    the server before restoring over a database it has open. The archive is fetched into a
    private temp folder beside the database: removed at the end, or by the next restore or
    start after a kill.
    """
    target = settings.path_sqlite
    sidecars = [Path(f"{target}{suffix}") for suffix in ("", "-wal", "-shm")]
    if any(p.exists() for p in sidecars) and not force:
        raise RestoreError(
            f"a database already exists at {target}; pass --force to replace it (it is kept aside)"
        )
    private_dir(target.parent)
    remove_leftovers(settings)
    with tempfile.TemporaryDirectory(
        prefix=_temp_prefix(target, "restore"), dir=target.parent
    ) as tmp:
        held = _lock(Path(tmp))
        try:
            archive = _private(Path(tmp) / "backup.tar.gz")
            _fetch(settings, source, archive)
            restored = Path(tmp) / "restored.db"
            _extract_db(archive, restored)
            _check(settings, restored)
            _replace(target, sidecars, restored, when or datetime.now(UTC))
        finally:
            os.close(held)
    _fsync_dir(target.parent)
    return target


def _replace(target: Path, sidecars: list[Path], restored: Path, when: datetime) -> None:
    """Move `restored` to `target`, keeping what was there (with its -wal/-shm) aside."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    for path in sidecars:
        if path.exists():
            aside = Path(f"{target}.replaced-{stamp}{path.name[len(target.name) :]}")
            os.replace(path, aside)
            log.warning(
                "kept the replaced %s as %s", path, aside, extra={"action": "restore_kept_aside"}
            )
    os.replace(restored, target)
