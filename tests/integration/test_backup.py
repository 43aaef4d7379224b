"""Backups end to end: local folder and S3 (moto's real HTTP server), schedule, restore, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.config import Config

from tasks_server import backup
from tasks_server.backup import (
    BackupError,
    BackupScheduler,
    RestoreError,
    S3Destination,
    archive_name,
    backup_now,
    restore,
    run_backup,
    snapshot,
)
from tasks_server.metrics import Metrics
from tasks_server.settings import BackupMethod, Settings
from tasks_server.store import build_store
from tasks_server.store.base import TaskStore
from tests.conftest import MakeSettings, open_client, register_owner
from tests.integration.server import ServerProcess, free_port, silent_listener

T0 = datetime(2026, 11, 22, 7, 25, 31, tzinfo=UTC)
NAME_RE = re.compile(r"^tasks-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.db\.tar\.gz$")
TASK = {
    "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "POST", "data": "hello"},
    "config": {"executionDelay": 3_600_000},
}


# --- fixtures and helpers ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[TaskStore]:
    store = build_store(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3_settings(make_settings: MakeSettings, endpoint: str, bucket: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "backup_method_sqlite": BackupMethod.OBJECT_STORAGE,
        "backup_object_storage_endpoint": endpoint,
        "backup_object_storage_bucket_name": bucket,
        "backup_object_storage_path": "nightly/",
        "backup_object_storage_access_key": "test",
        "backup_object_storage_secret_key": "test",
        "s3_region": "us-east-1",
    }
    values.update(extra)
    return make_settings(**values)


@pytest.fixture
def local_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(backup_path_dir_sqlite=tmp_path / "backups")


async def populate(settings: Settings, name: str = "owner-one") -> tuple[dict[str, str], str]:
    """A real database with an owner and a task; return the owner's headers and the task id."""
    async with open_client(settings) as client:
        owner = await register_owner(client, name)
        response = await client.post("/v1/queues/register", json=TASK, headers=owner)
        assert response.status_code == 201, response.text
        return owner, response.json()["id"]


async def assert_serves(settings: Settings, owner: dict[str, str], name: str, task: str) -> None:
    async with open_client(settings) as client:
        response = await client.get(f"/v1/owners/{name}", headers=owner)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name
        response = await client.get(f"/v1/queues/{task}", headers=owner)
        assert response.status_code == 200, response.text


def owner_names(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT name FROM owners")}


def unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive, "r:gz") as tar:
        (member,) = tar.getmembers()
        assert member.name == "tasks.db" and member.isfile()
        source = tar.extractfile(member)
        assert source is not None
        out = into / "unpacked.db"
        out.write_bytes(source.read())
    return out


def sidecars(db: Path) -> list[Path]:
    """The database file, its -wal and its -shm."""
    return [db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm")]


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def counter(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("tasks_backups_total", {"outcome": outcome})
    return value or 0.0


# --- local ------------------------------------------------------------------------------


async def test_local_backup_end_to_end(local_settings: Settings, tmp_path: Path) -> None:
    await populate(local_settings)
    metrics = Metrics()
    where = Path(await run_backup(local_settings, metrics))
    assert where.parent == local_settings.backup_path_dir_sqlite
    assert NAME_RE.match(where.name)
    assert [p.name for p in where.parent.iterdir()] == [where.name]  # no temp file left
    assert owner_names(unpack(where, tmp_path)) == {"owner-one"}
    assert counter(metrics, "success") == 1 and counter(metrics, "failure") == 0
    assert metrics.registry.get_sample_value(
        "tasks_last_successful_backup_timestamp_seconds"
    ) == pytest.approx(datetime.now(UTC).timestamp(), abs=60)


def test_archive_name_is_utc_and_filename_safe() -> None:
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert archive_name(Path("/x/tasks.db"), paris) == "tasks-2026-11-22T07-25-31Z.db.tar.gz"


async def test_local_retention_keeps_newest(local_settings: Settings) -> None:
    await populate(local_settings)
    settings = local_settings.model_copy(update={"backup_retention": 3})
    directory = settings.backup_path_dir_sqlite
    directory.mkdir(parents=True)
    (directory / "notes.txt").write_text("not a backup")
    names = [
        Path(await asyncio.to_thread(backup_now, settings, T0 + timedelta(hours=i))).name
        for i in range(5)
    ]
    kept = sorted(p.name for p in directory.glob("*.db.tar.gz"))
    assert kept == names[2:]
    assert (directory / "notes.txt").exists()


# --- S3 ---------------------------------------------------------------------------------


async def test_s3_backup_end_to_end_and_restore(
    make_settings: MakeSettings, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    settings = s3_settings(make_settings, s3_endpoint, bucket)
    owner, task = await populate(settings)
    metrics = Metrics()
    where = await run_backup(settings, metrics)
    key = where.removeprefix(f"s3://{bucket}/")
    assert key.startswith("nightly/") and NAME_RE.match(key.removeprefix("nightly/"))
    client = s3_client(s3_endpoint)
    client.download_file(bucket, key, str(tmp_path / "fetched.tar.gz"))
    assert owner_names(unpack(tmp_path / "fetched.tar.gz", tmp_path)) == {"owner-one"}
    assert counter(metrics, "success") == 1

    # Restore by the archive's bare name: the key is under the configured prefix.
    fresh = settings.model_copy(update={"path_sqlite": tmp_path / "fresh" / "tasks.db"})
    assert restore(fresh, key.removeprefix("nightly/"), force=False) == fresh.path_sqlite
    await assert_serves(fresh, owner, "owner-one", task)


def test_s3_multipart_upload_is_verified(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    archive = tmp_path / "big-2026-01-01T00-00-00Z.db.tar.gz"
    archive.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's 8 MiB multipart threshold
    dest = S3Destination(s3_endpoint, bucket, "", "test", "test", None)
    assert dest.put(archive) == f"s3://{bucket}/{archive.name}"
    head = s3_client(s3_endpoint).head_object(Bucket=bucket, Key=archive.name)
    assert head["ContentLength"] == archive.stat().st_size
    assert "-" in head["ETag"]  # a multipart ETag


async def test_s3_retention_keeps_newest_under_prefix(
    make_settings: MakeSettings, s3_endpoint: str, bucket: str
) -> None:
    settings = s3_settings(make_settings, s3_endpoint, bucket, backup_retention=2)
    await populate(settings)
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=bucket, Key="other/tasks-2000-01-01T00-00-00Z.db.tar.gz", Body=b"x")
    client.put_object(Bucket=bucket, Key="nightly/sub/tasks-2000.db.tar.gz", Body=b"x")
    wheres = [
        await asyncio.to_thread(backup_now, settings, T0 + timedelta(days=i)) for i in range(4)
    ]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    expected = {w.removeprefix(f"s3://{bucket}/") for w in wheres[2:]}
    assert set(keys) == expected | {
        "other/tasks-2000-01-01T00-00-00Z.db.tar.gz",
        "nightly/sub/tasks-2000.db.tar.gz",
    }


# --- failures ---------------------------------------------------------------------------


async def test_unreachable_endpoint_fails_and_counts(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup, "S3_MAX_ATTEMPTS", 1)
    settings = s3_settings(make_settings, f"http://127.0.0.1:{free_port()}", "backups")
    await populate(settings)
    metrics = Metrics()
    with pytest.raises(BackupError, match="Could not connect to the endpoint"):
        await run_backup(settings, metrics)
    assert counter(metrics, "failure") == 1 and counter(metrics, "success") == 0


async def test_missing_bucket_fails_and_leaves_earlier_backups(
    make_settings: MakeSettings, s3_endpoint: str, bucket: str
) -> None:
    # moto accepts any credentials, so a bucket that does not exist stands in for bad ones.
    good = s3_settings(make_settings, s3_endpoint, bucket)
    await populate(good)
    first = await run_backup(good)
    bad = good.model_copy(update={"backup_object_storage_bucket_name": "no-such-bucket"})
    with pytest.raises(BackupError, match="NoSuchBucket"):
        await asyncio.to_thread(backup_now, bad, T0)
    contents = s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert [f"s3://{bucket}/{o['Key']}" for o in contents] == [first]


async def test_full_folder_leaves_no_partial_and_earlier_intact(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await populate(local_settings)
    await run_backup(local_settings, when=T0)
    before = files(local_settings.backup_path_dir_sqlite)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup.os, "fsync", full)
    metrics = Metrics()
    with pytest.raises(BackupError, match="No space left on device"):
        await run_backup(local_settings, metrics, when=T0 + timedelta(hours=1))
    assert files(local_settings.backup_path_dir_sqlite) == before
    assert counter(metrics, "failure") == 1


async def test_read_only_folder_fails(make_settings: MakeSettings, tmp_path: Path) -> None:
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if os.geteuid() == 0:
        # root writes through a 0500 mode: a regular file where the folder should be fails too.
        target = readonly / "backups"
        target.write_text("in the way")
    else:
        target = readonly / "backups"
        readonly.chmod(0o500)
    try:
        settings = make_settings(backup_path_dir_sqlite=target)
        await populate(settings)
        with pytest.raises(BackupError, match=r"backup of .* failed"):
            await run_backup(settings)
    finally:
        readonly.chmod(0o700)
    assert [p.name for p in readonly.iterdir()] == (["backups"] if os.geteuid() == 0 else [])


async def test_missing_database_fails(local_settings: Settings) -> None:
    with pytest.raises(BackupError, match="no database at"):
        await run_backup(local_settings)
    assert not local_settings.backup_path_dir_sqlite.exists()


# --- consistency under writes -----------------------------------------------------------


async def test_backup_during_registration_storm_holds_acknowledged_writes(
    local_settings: Settings, tmp_path: Path
) -> None:
    acknowledged: list[str] = []
    stop = asyncio.Event()
    enough = asyncio.Event()
    async with open_client(local_settings) as client:

        async def storm(worker: int) -> None:
            for n in range(10_000):
                if stop.is_set():
                    return
                name = f"owner-{worker}-{n}"
                response = await client.post("/v1/owners/register", json={"name": name})
                assert response.status_code == 201
                acknowledged.append(name)
                if len(acknowledged) >= 40:
                    enough.set()

        workers = [asyncio.create_task(storm(w)) for w in range(8)]
        await enough.wait()
        before = set(acknowledged)
        where = Path(await run_backup(local_settings))
        stop.set()
        await asyncio.gather(*workers)
    restored = restore(
        local_settings.model_copy(update={"path_sqlite": tmp_path / "restored" / "tasks.db"}),
        str(where),
    )
    names = owner_names(restored)
    assert before <= names <= set(acknowledged)


def test_snapshot_under_concurrent_thread_writes(tmp_path: Path) -> None:
    db = tmp_path / "rows.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.commit()
    committed = 0
    stop = threading.Event()
    started = threading.Event()

    def writer() -> None:
        nonlocal committed
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO rows (payload) VALUES (?)", (os.urandom(512),))
                conn.commit()
                committed += 1
                if committed >= 200:
                    started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(30)
        for i in range(3):
            floor = committed
            snapshot(db, tmp_path / f"snap{i}.db")
            with contextlib.closing(sqlite3.connect(tmp_path / f"snap{i}.db")) as snap:
                count, top = snap.execute("SELECT count(*), max(id) FROM rows").fetchone()
            assert count == top >= floor  # every committed row, no holes
    finally:
        stop.set()
        thread.join()


# --- schedule and leadership ------------------------------------------------------------


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


class _Stop(BaseException):
    pass


async def test_next_fire_in_backup_time_zone(make_settings: MakeSettings) -> None:
    settings = make_settings(backup_cron_tz_sqlite="Europe/Paris")
    async with open_store(settings) as store:
        scheduler = BackupScheduler(store, settings)
        assert scheduler.next_fire(T0) == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # midnight
        summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        assert scheduler.next_fire(summer) == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
        default = BackupScheduler(store, make_settings(tz="UTC"))
        assert default.next_fire(T0) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


async def test_scheduler_fires_on_time_and_survives_failures(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    fired: list[datetime] = []

    async def fake_backup() -> str:
        fired.append(clock.now)
        if len(fired) == 2:
            raise BackupError("backup of tasks.db failed: endpoint unreachable")
        if len(fired) == 4:
            raise _Stop
        return "somewhere"

    settings = make_settings(backup_cron_pattern_sqlite="*/15 * * * *")
    async with open_store(settings) as store:
        scheduler = BackupScheduler(
            store, settings, now=clock, sleep=clock.sleep, backup=fake_backup
        )
        with caplog.at_level(logging.ERROR, logger="tasks_server.backup"), pytest.raises(_Stop):
            await scheduler.run_forever()
        await scheduler.stop()
    assert fired == [
        datetime(2026, 11, 22, 7, 30, tzinfo=UTC),
        datetime(2026, 11, 22, 7, 45, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 15, tzinfo=UTC),
    ]
    failures = [r for r in caplog.records if getattr(r, "action", None) == "backup_failed"]
    assert len(failures) == 1 and "endpoint unreachable" in failures[0].getMessage()


async def test_scheduler_runs_real_backup_with_metrics(local_settings: Settings) -> None:
    await populate(local_settings)
    clock = FakeClock(T0)
    metrics = Metrics()
    settings = local_settings.model_copy(update={"backup_cron_pattern_sqlite": "0 * * * *"})
    async with open_store(settings) as store:
        scheduler = BackupScheduler(store, settings, metrics, now=clock)
        assert await scheduler.run_once() is not None
        await scheduler.stop()
    assert counter(metrics, "success") == 1
    assert len(list(settings.backup_path_dir_sqlite.glob("*.db.tar.gz"))) == 1


async def test_only_the_holder_of_the_stores_backup_role_backs_up(
    make_settings: MakeSettings,
) -> None:
    """Processes of one database elect the backup leader through the store, as its other
    jobs do; the role is taken at a fire time, so a stopped leader is replaced."""
    settings = make_settings()
    calls: list[str] = []

    async def fake_backup() -> str:
        calls.append("backup")
        return "x"

    async with open_store(settings) as one, open_store(settings) as two:
        first = BackupScheduler(one, settings, backup=fake_backup)
        second = BackupScheduler(two, settings, backup=fake_backup)
        assert await first.run_once() == "x"
        assert await second.run_once() is None  # another holder: skipped
        assert calls == ["backup"]
        assert await two.leader("backup") is None
        await first.stop()  # gives the role up: the next one takes over
        assert await second.run_once() == "x"
        await second.stop()
        leader = await one.leader("backup")
        assert leader is not None
        leader.release()


async def test_a_shared_database_is_not_backed_up(
    make_settings: MakeSettings, postgres_url: str
) -> None:
    """Only a local SQLite file is: a shared database is backed up by its own tools."""
    settings = make_settings(database_url=postgres_url)
    async with open_store(settings) as store:
        scheduler = BackupScheduler(store, settings)
        scheduler.start()
        assert BackupScheduler.name not in {t.get_name() for t in asyncio.all_tasks()}
        await scheduler.stop()
    async with open_store(make_settings()) as local:
        scheduler = BackupScheduler(local, settings)
        scheduler.start()
        assert BackupScheduler.name in {t.get_name() for t in asyncio.all_tasks()}
        await scheduler.stop()


# --- restore ----------------------------------------------------------------------------


async def test_backup_restore_serves_same_owners_and_tasks(
    local_settings: Settings, tmp_path: Path
) -> None:
    owner, task = await populate(local_settings)
    where = await run_backup(local_settings)
    target = local_settings.model_copy(update={"path_sqlite": tmp_path / "new" / "tasks.db"})
    assert restore(target, where) == target.path_sqlite
    await assert_serves(target, owner, "owner-one", task)


async def test_restore_by_name_from_backup_folder(local_settings: Settings) -> None:
    owner, task = await populate(local_settings)
    name = Path(await run_backup(local_settings)).name
    db = local_settings.path_sqlite
    for path in sidecars(db):
        path.unlink(missing_ok=True)
    restore(local_settings, name)
    await assert_serves(local_settings, owner, "owner-one", task)


async def test_restore_refuses_existing_db_and_force_keeps_it_aside(
    local_settings: Settings,
) -> None:
    owner, task = await populate(local_settings)
    where = await run_backup(local_settings)
    db = local_settings.path_sqlite
    await populate(local_settings, "owner-later")  # not in the backup
    sidecars(db)[1].write_bytes(b"")  # a -wal left beside it travels with it
    original = db.read_bytes()
    with pytest.raises(RestoreError, match="already exists"):
        restore(local_settings, where)
    assert db.read_bytes() == original

    assert restore(local_settings, where, force=True, when=T0) == db
    aside = db.with_name("tasks.db.replaced-2026-11-22T07-25-31Z")
    assert aside.read_bytes() == original
    assert sidecars(aside)[1].exists() and not sidecars(db)[1].exists()
    assert owner_names(aside) == {"owner-one", "owner-later"}
    assert owner_names(db) == {"owner-one"}
    await assert_serves(local_settings, owner, "owner-one", task)


def _tar(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"../evil.db": b"x"}, "unexpected entry"),
        ({"tasks.db": b"x", "extra.db": b"y"}, "expected one database file"),
        ({"tasks.db": b"not a database at all" * 100}, "not a sound SQLite database"),
    ],
)
def test_restore_rejects_bad_archives(
    local_settings: Settings, tmp_path: Path, entries: dict[str, bytes], message: str
) -> None:
    archive = _tar(tmp_path / "bad.db.tar.gz", entries)
    with pytest.raises(RestoreError, match=message):
        restore(local_settings, str(archive))
    assert not local_settings.path_sqlite.exists()
    assert not (tmp_path / "evil.db").exists()
    assert list(local_settings.path_sqlite.parent.iterdir()) == []  # temp dir cleaned


def test_restore_unknown_source(local_settings: Settings) -> None:
    with pytest.raises(RestoreError, match="cannot fetch backup"):
        restore(local_settings, "tasks-1999-01-01T00-00-00Z.db.tar.gz")


# --- CLI --------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks_server", *args],
        env={**os.environ, "LOG": "0", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_cli_backup_and_restore(local_settings: Settings, tmp_path: Path) -> None:
    await populate(local_settings)
    db = local_settings.path_sqlite
    env = {
        "PATH_SQLITE": str(db),
        "BACKUP_PATH_DIR_SQLITE": str(tmp_path / "backups"),
        "CIPHER_KEY": str(local_settings.cipher_key),  # restore checks the archive against it
    }
    done = _cli("backup", env=env)
    assert done.returncode == 0, done.stderr
    where = Path(done.stdout.strip())
    assert where.parent == tmp_path / "backups" and NAME_RE.match(where.name)

    refused = _cli("restore", str(where), env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "already exists" in refused.stderr

    forced = _cli("restore", str(where), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "restored" in forced.stdout
    assert list(db.parent.glob("tasks.db.replaced-*"))
    assert owner_names(db) == {"owner-one"}


def _restore_folder(db_dir: Path) -> Path | None:
    """The temp folder of a restore under way in `db_dir`, once its archive file is there."""
    for path in db_dir.glob(".*restore-*"):
        if (path / "backup.tar.gz").exists():
            return path
    return None


@pytest.mark.parametrize("then", ["restore", "serve"])
def test_a_restore_killed_mid_way_leaves_nothing_after_the_next(
    local_settings: Settings, tmp_path: Path, then: str
) -> None:
    """kill -9 during the download: its private temp folder stays until the next restore or
    start removes it (SPEC §10.9)."""
    asyncio.run(populate(local_settings))
    archive = asyncio.run(run_backup(local_settings))
    target = tmp_path / "restored" / "tasks.db"
    env = {"PATH_SQLITE": str(target), "CIPHER_KEY": str(local_settings.cipher_key)}
    with silent_listener() as port:  # an object storage that never answers: the fetch hangs
        stalled = {
            **os.environ,
            **env,
            "LOG": "0",
            "BACKUP_METHOD_SQLITE": "OBJECT_STORAGE",
            "BACKUP_OBJECT_STORAGE_ENDPOINT": f"http://127.0.0.1:{port}",
            "BACKUP_OBJECT_STORAGE_BUCKET_NAME": "backups",
            "BACKUP_OBJECT_STORAGE_ACCESS_KEY": "test",
            "BACKUP_OBJECT_STORAGE_SECRET_KEY": "test",
        }
        restoring = subprocess.Popen(
            [sys.executable, "-m", "tasks_server", "restore", "tasks.db.tar.gz"],
            env=stalled,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while (leftover := _restore_folder(target.parent)) is None:
                assert restoring.poll() is None, "the restore ended instead of hanging"
                assert time.monotonic() < deadline, "no restore folder with its archive in 30 s"
                time.sleep(0.05)
        finally:
            restoring.kill()
            restoring.wait()
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o700
    assert stat.S_IMODE((leftover / "backup.tar.gz").stat().st_mode) == 0o600

    if then == "restore":
        done = _cli("restore", archive, env=env)
        assert done.returncode == 0, done.stderr
    else:
        with ServerProcess(tmp_path, **env):
            pass
    assert not leftover.exists()
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".")) == []


def test_cli_backup_failure_is_one_line(tmp_path: Path) -> None:
    env = {
        "PATH_SQLITE": str(tmp_path / "missing" / "tasks.db"),
        "BACKUP_PATH_DIR_SQLITE": str(tmp_path / "backups"),
    }
    failed = _cli("backup", env=env)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("tasks-server: backup of") and "no database at" in failed.stderr
    assert failed.stderr.strip().count("\n") == 0
