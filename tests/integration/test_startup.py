"""Start-up and files (SPEC §10.9, §9.6, §15.7): the key check, failures that exit, private
files and folders, logs."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest

from tests import processes
from tests.integration.server import ServerProcess, free_port, silent_listener

TASKS_SERVER = str(Path(sys.executable).parent / "tasks-server")
# Every start-up failure must end the process well within this.
DEADLINE_S = 20


def _run(
    workdir: Path, *args: str, deadline: float = DEADLINE_S, **env: Any
) -> subprocess.CompletedProcess[str]:
    """`tasks-server ARGS` in `workdir` with the test database; must end before `deadline`."""
    full_env = {
        **os.environ,
        "PORT": str(free_port()),
        "PATH_SQLITE": str(workdir / "db" / "tasks.db"),
        "LOG": "0",
        **{key: str(value) for key, value in env.items()},
    }
    try:
        return processes.run([TASKS_SERVER, *args], cwd=workdir, env=full_env, timeout=deadline)
    except subprocess.TimeoutExpired as exc:  # run() has killed it, a cluster's workers too
        pytest.fail(f"tasks-server {' '.join(args)} still running after {deadline} s: {exc}")


def _with_data(workdir: Path, **env: Any) -> dict[str, str]:
    """Start a server, register an owner and a task, stop it; return the owner's auth headers."""
    with ServerProcess(workdir, **env) as server, httpx.Client(base_url=server.url) as http:
        owner = http.post("/v1/owners/register", json={"name": "owner-data"}).json()
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        task = {
            "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
            "config": {"executionDelay": 3_600_000},
        }
        assert http.post("/v1/queues/register", json=task, headers=headers).status_code == 201
    return headers


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


CLUSTER = {"CLUSTER_MODE": 1, "MAX_INSTANCES": 2}


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that selects each store: nothing for SQLite, DATABASE_URL otherwise."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_url")}


@pytest.mark.parametrize("mode", [{}, CLUSTER], ids=["single", "cluster"])
def test_another_cipher_key_exits_2_naming_it(
    tmp_path: Path, mode: dict[str, Any], store_env: dict[str, str]
) -> None:
    _with_data(tmp_path, CIPHER_KEY="the-first-key", **store_env)
    result = _run(tmp_path, "serve", CIPHER_KEY="another-key", **mode, **store_env)
    assert result.returncode == 2
    assert _one_line(result).startswith("tasks-server: CIPHER_KEY does not match the database")


def test_the_right_key_still_starts_and_the_data_opens(tmp_path: Path) -> None:
    headers = _with_data(tmp_path, CIPHER_KEY="the-first-key")
    assert _run(tmp_path, "serve", CIPHER_KEY="another-key").returncode == 2
    with ServerProcess(tmp_path, CIPHER_KEY="the-first-key") as server:
        tasks = httpx.get(f"{server.url}/v1/queues", headers=headers)
        assert tasks.status_code == 200 and len(tasks.json()) == 1


@pytest.mark.parametrize("mode", [{}, CLUSTER], ids=["single", "cluster"])
def test_a_deleted_key_file_exits_2_and_no_new_key_is_made(
    tmp_path: Path, mode: dict[str, Any]
) -> None:
    _with_data(tmp_path)
    key_file = tmp_path / "db" / "tasks.db.key"
    key_file.unlink()
    result = _run(tmp_path, "serve", **mode)
    assert result.returncode == 2
    assert f"the key file {key_file} is missing" in _one_line(result)
    assert not key_file.exists()


def test_a_database_from_before_the_check_value(tmp_path: Path) -> None:
    """No check value yet: accepted when the key opens a stored task, which records it."""
    _with_data(tmp_path, CIPHER_KEY="old-key")
    db = tmp_path / "db" / "tasks.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta")
    assert _run(tmp_path, "serve", CIPHER_KEY="wrong-key").returncode == 2
    with ServerProcess(tmp_path, CIPHER_KEY="old-key"):
        pass
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM meta").fetchone() == (1,)


def test_restore_with_the_wrong_key_exits_2_and_replaces_nothing(tmp_path: Path) -> None:
    _with_data(tmp_path, CIPHER_KEY="backup-key")
    backup = _run(tmp_path, "backup", CIPHER_KEY="backup-key")
    assert backup.returncode == 0, backup.stderr
    archive = backup.stdout.strip()
    target = tmp_path / "restored" / "tasks.db"
    result = _run(tmp_path, "restore", archive, PATH_SQLITE=target, CIPHER_KEY="other-key")
    assert result.returncode == 2
    assert _one_line(result).startswith("tasks-server: CIPHER_KEY does not match the database")
    assert not target.exists()
    good = _run(tmp_path, "restore", archive, PATH_SQLITE=target, CIPHER_KEY="backup-key")
    assert good.returncode == 0, good.stderr
    assert _mode(target.parent) == 0o700 and _mode(target) == 0o600


def test_a_malformed_key_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "tasks.db.key").write_text("not a key\n")
    result = _run(tmp_path, "serve")
    assert result.returncode == 2
    assert "is not usable" in _one_line(result)


@pytest.mark.parametrize("mode", [{}, CLUSTER], ids=["single", "cluster"])
def test_a_file_that_is_not_a_database_exits_non_zero(tmp_path: Path, mode: dict[str, Any]) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "tasks.db").write_bytes(b"not a database " * 100)
    result = _run(tmp_path, "serve", CIPHER_KEY="k", **mode)
    assert result.returncode == 2
    assert "tasks.db" in _one_line(result)


def test_an_unusable_database_folder_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    result = _run(tmp_path, "serve", CIPHER_KEY="k", PATH_SQLITE=tmp_path / "file" / "tasks.db")
    assert result.returncode == 2, result.stderr
    assert _one_line(result).startswith(f"tasks-server: cannot open the database {tmp_path}")


def _elsewhere(url: str, **parts: Any) -> str:
    """`url` with another user, password, port or database."""
    split = urlsplit(url)
    user = parts.get("user", split.username)
    password = parts.get("password", split.password)
    userinfo = f"{user}:{password}" if password else str(user)
    port = parts.get("port", split.port)
    path = f"/{parts['database']}" if "database" in parts else split.path
    return urlunsplit(split._replace(netloc=f"{userinfo}@127.0.0.1:{port}", path=path))


# The suite's PostgreSQL trusts every login (initdb -A trust): an unknown role is the failed
# login it can give.
PROBLEMS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "failed login": (
        lambda: {"user": "nobody", "password": "s3cret"},
        'role "nobody" does not exist',
    ),
    "unknown database": (
        lambda: {"database": "no_such_db"},
        'database "no_such_db" does not exist',
    ),
    "refused connection": (
        lambda: {"password": "s3cret", "port": free_port()},
        "connection refused",
    ),
}


@pytest.mark.parametrize("mode", [{}, CLUSTER], ids=["single", "cluster"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_postgresql_that_cannot_be_opened_exits_2_with_one_line(
    tmp_path: Path, postgres_url: str, problem: str, mode: dict[str, Any]
) -> None:
    parts, reason = PROBLEMS[problem]
    url = _elsewhere(postgres_url, **parts())
    result = _run(tmp_path, "serve", DATABASE_URL=url, CIPHER_KEY="k", **mode)
    assert result.returncode == 2, result.stderr
    line = _one_line(result)
    assert line.startswith("tasks-server: cannot open the database postgresql://"), line
    assert line.endswith(reason), line
    assert "s3cret" not in line


def test_a_migrate_that_cannot_connect_exits_2_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://tasks:s3cret@127.0.0.1:{port}/tasks"
    result = _run(tmp_path, "migrate", DATABASE_URL=url, CIPHER_KEY="k")
    assert result.returncode == 2, result.stderr
    assert _one_line(result) == (
        f"tasks-server: cannot open the database postgresql://tasks@127.0.0.1:{port}/tasks: "
        "connection refused"
    )


@pytest.mark.parametrize(
    ("mode", "waited"),
    [({}, "5 s"), ({**CLUSTER, "DATABASE_CONNECT_TIMEOUT_MS": 1000}, "1 s")],
    ids=["single", "cluster"],
)
def test_a_database_that_never_answers_fails_within_seconds(
    tmp_path: Path, mode: dict[str, Any], waited: str
) -> None:
    with silent_listener() as port:
        url = f"postgresql://tasks@127.0.0.1:{port}/tasks"
        result = _run(tmp_path, "serve", DATABASE_URL=url, CIPHER_KEY="k", deadline=15, **mode)
    assert result.returncode == 2, result.stderr
    assert _one_line(result).endswith(f"no answer within {waited} (DATABASE_CONNECT_TIMEOUT_MS)")


def test_a_worker_that_cannot_start_stops_the_cluster(tmp_path: Path) -> None:
    """A failure the parent's checks cannot see (the workers load TLS): the parent exits with
    the worker's status instead of starting it again forever."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    result = _run(tmp_path, "serve", CIPHER_KEY="k", PATH_TLS_CERT=bad, PATH_TLS_KEY=bad, **CLUSTER)
    assert result.returncode == 1, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("tasks-server: worker process "), result.stderr
    assert last.endswith("stopped before it served (exit status 1); its output above says why")


@pytest.mark.parametrize("mode", [{}, CLUSTER], ids=["single", "cluster"])
def test_a_port_in_use_exits_non_zero(tmp_path: Path, mode: dict[str, Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run(tmp_path, "serve", CIPHER_KEY="k", PORT=taken.getsockname()[1], **mode)
    assert result.returncode != 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_backup_leftovers_are_removed(tmp_path: Path) -> None:
    temp = tmp_path / "system-temp"
    temp.mkdir()
    db_dir = tmp_path / "db"
    with ServerProcess(tmp_path, TMPDIR=temp) as server:
        httpx.post(f"{server.url}/v1/owners/register", json={"name": "private"})
        assert _mode(db_dir) == 0o700
        for name in ("tasks.db", "tasks.db-wal", "tasks.db-shm", "tasks.db.key"):
            assert _mode(db_dir / name) == 0o600, name

    # What a backup killed mid-way leaves: its folder beside the database, a temp archive.
    backups = tmp_path / ".backup"
    backups.mkdir()
    killed_copy = db_dir / ".tasks.db.backup-killed1"
    killed_copy.mkdir()
    (killed_copy / "tasks.db").write_bytes(b"copy")
    killed_archive = backups / ".tasks-2026-01-01T00-00-00Z.db.tar.gz.0123abcd.tmp"
    killed_archive.write_bytes(b"partial")

    result = _run(tmp_path, "backup", TMPDIR=temp)
    assert result.returncode == 0, result.stderr
    archive = Path(result.stdout.strip())
    assert _mode(archive) == 0o600
    assert not killed_copy.exists() and not killed_archive.exists()
    assert sorted(p.name for p in backups.iterdir()) == [archive.name]
    assert [p.name for p in db_dir.iterdir() if p.name.startswith(".")] == []
    assert list(temp.iterdir()) == []  # nothing went through the system temp folder

    killed_copy.mkdir()
    with ServerProcess(tmp_path):  # a start removes them too
        assert not killed_copy.exists()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which mkdir -p makes the parents 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_every_folder_the_server_creates_is_private_parents_included(tmp_path: Path) -> None:
    db = tmp_path / "data" / "deep" / "tasks.db"
    backups = tmp_path / "saved" / "deep" / "backups"
    env = {"PATH_SQLITE": db, "BACKUP_PATH_DIR_SQLITE": backups, "CIPHER_KEY": "k"}
    with ServerProcess(tmp_path, **env):
        pass
    backup = _run(tmp_path, "backup", **env)
    assert backup.returncode == 0, backup.stderr
    restored = tmp_path / "restored" / "deep" / "tasks.db"
    result = _run(tmp_path, "restore", backup.stdout.strip(), **{**env, "PATH_SQLITE": restored})
    assert result.returncode == 0, result.stderr
    for folder in (db.parent, backups, restored.parent):
        relative = folder.relative_to(tmp_path)
        for created in [relative, *relative.parents][:-1]:  # all but tmp_path itself (".")
            assert _mode(tmp_path / created) == 0o700, created


def test_a_new_backup_folder_is_private(tmp_path: Path) -> None:
    _with_data(tmp_path, CIPHER_KEY="k")
    result = _run(tmp_path, "backup", CIPHER_KEY="k", BACKUP_PATH_DIR_SQLITE=tmp_path / "new")
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "new") == 0o700


def test_json_logs_are_one_object_per_line_without_secrets(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, LOG=1, LOG_FORMAT="json")
    with server, httpx.Client(base_url=server.url) as http:
        owner = http.post("/v1/owners/register", json={"name": "json-logs"}).json()
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines
    records = [orjson.loads(line) for line in lines]
    for record in records:
        assert {"ts", "level", "event"} <= set(record)
    assert any(record.get("action") == "cipher_key_generated" for record in records)
    assert owner["key"] not in server.output()


# --- time zones and crons in settings (SPEC §15.5) ---------------------------------------

BAD_TIME_SETTINGS = [
    ("TZ", "America"),
    ("TZ", "x" * 300),
    ("LOG_TZ", "Europe"),
    ("LOG_TZ", "../../etc/passwd"),
    ("BACKUP_CRON_TZ_SQLITE", "America"),
    ("BACKUP_CRON_PATTERN_SQLITE", "0 0 31 2 *"),
    ("BACKUP_CRON_PATTERN_SQLITE", "0 0 31 4 *"),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_TIME_SETTINGS, ids=[f"{n}={v[:12]}" for n, v in BAD_TIME_SETTINGS]
)
def test_a_bad_zone_or_a_cron_that_never_fires_exits_2_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    result = _run(tmp_path, "serve", CIPHER_KEY="k", **{name: value})
    assert result.returncode == 2, result.stderr
    assert _one_line(result).startswith(f"tasks-server: invalid setting {name}: ")
    assert not (tmp_path / "db").exists()  # refused before anything was created
