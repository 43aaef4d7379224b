"""The single-file executable of scripts/build-binary, run as on a machine without Python.

The binary is built once per module into a temp folder (set TASKS_SERVER_BINARY to test one
built already). Every run gets an environment with no virtualenv, no PYTHON* variables and
a PATH holding nothing, so it can only work from what it carries inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tasks_server import __version__
from tests.integration.server import ServerProcess
from tests.target import Target

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600
CIPHER_KEY = "binary-test-cipher-key"


def _is_python_or_coverage(name: str) -> bool:
    return name == "VIRTUAL_ENV" or name.startswith(("PYTHON", "COVERAGE", "COV_CORE"))


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if prebuilt := os.environ.get("TASKS_SERVER_BINARY"):
        return Path(prebuilt).resolve()
    dist = tmp_path_factory.mktemp("binary-dist")
    # The build needs no coverage measurement of PyInstaller and pip.
    env = {k: v for k, v in os.environ.items() if not _is_python_or_coverage(k)}
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-binary"), "--distpath", str(dist)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    built = dist / "tasks-server"
    assert built.is_file() and os.access(built, os.X_OK)
    return built


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """os.environ without Python or coverage, with a PATH that finds no program at all."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not _is_python_or_coverage(k)}
    return {**env, "PATH": str(empty), "LOG": "0", "CIPHER_KEY": CIPHER_KEY}


def run(binary: Path, *args: str, env: dict[str, str], **extra: str) -> str:
    """Run a one-shot command of the binary; return its standard output."""
    done = subprocess.run(
        [str(binary), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def serve(binary: Path, workdir: Path, env: dict[str, str], **extra: Any) -> ServerProcess:
    server = ServerProcess(workdir, command=[str(binary), "serve"], **extra)
    # ServerProcess starts from os.environ: replace that with the bare one, keeping its own.
    server.env = {**env, **{k: server.env[k] for k in ("PORT", "PATH_SQLITE", *extra)}}
    return server


def register_owner(http: httpx.Client, name: str) -> dict[str, str]:
    response = http.post("/v1/owners/register", json={"name": name})
    assert response.status_code == 201, response.text
    owner = response.json()
    return {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}


def register_task(http: httpx.Client, headers: dict[str, str], url: str) -> str:
    body = {"httpRequest": {"url": url, "method": "GET"}, "config": {"executionDelay": 0}}
    response = http.post("/v1/queues/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_state(http: httpx.Client, headers: dict[str, str], task: str, state: str) -> None:
    deadline = time.monotonic() + 10
    while (seen := http.get(f"/v1/queues/{task}", headers=headers).json()["state"]) != state:
        assert time.monotonic() < deadline, f"task stayed {seen}"
        time.sleep(0.05)  # polling the API, as a user would


def test_version(binary: Path, bare_env: dict[str, str]) -> None:
    assert run(binary, "version", env=bare_env).strip() == f"tasks-server {__version__}"


def test_serves_executes_a_task_and_stops_on_sigterm(
    binary: Path, bare_env: dict[str, str], tmp_path: Path
) -> None:
    server = serve(binary, tmp_path, bare_env, LOG=1)
    with Target() as target, server, httpx.Client(base_url=server.url, timeout=10) as http:
        headers = register_owner(http, "binary-owner")
        task = register_task(http, headers, f"{target.url}/binary")
        target.wait(lambda: len(target.hits_for("/binary")) >= 1)
        assert target.hits_for("/binary")[0].queue_id == task
        wait_state(http, headers, task, "SUCCESS")
        assert http.get("/health").json()["status"] == "ok"
        assert "tasks_attempts_total" in http.get("/metrics").text
        assert server.stop(signal.SIGTERM) == 0
    assert "Application shutdown complete" in server.output()
    assert (tmp_path / "db" / "tasks.db").exists()


def test_the_tasks_client_rides_along(
    binary: Path, bare_env: dict[str, str], tmp_path: Path
) -> None:
    """`tasks-server client …` (or the binary linked as `tasks`) is the `tasks` client."""
    server = serve(binary, tmp_path, bare_env)
    with Target() as target, server, httpx.Client(base_url=server.url, timeout=10) as http:
        headers = register_owner(http, "client-owner")
        task = register_task(http, headers, f"{target.url}/client")
        wait_state(http, headers, task, "SUCCESS")
        creds = {
            "TASKS_URL": server.url,
            "TASKS_OWNER_ID": headers["X-Tasks-Owner-Id"],
            "TASKS_KEY": headers["Authorization"].removeprefix("Bearer "),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        listed = run(binary, "client", "ls", "--json", env=bare_env, **creds)
        assert [row["id"] for row in json.loads(listed)] == [task]
        linked = tmp_path / "tasks"
        linked.symlink_to(binary)
        shown = run(linked, "show", task, "--json", env=bare_env, **creds)
        assert json.loads(shown)["state"] == "SUCCESS"
        assert "stats" in run(binary, "client", "--help", env=bare_env)


def test_cluster_mode_spawns_workers_from_the_binary(
    binary: Path, bare_env: dict[str, str], tmp_path: Path
) -> None:
    server = serve(binary, tmp_path, bare_env, LOG=1, CLUSTER_MODE=1, MAX_INSTANCES=2)
    with Target() as target, server, httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/status").text == "OK"
        headers = register_owner(http, "cluster-binary")
        task = register_task(http, headers, f"{target.url}/cluster")
        target.wait(lambda: len(target.hits_for("/cluster")) >= 1)
        assert target.hits_for("/cluster")[0].queue_id == task
        assert server.stop(signal.SIGTERM) == 0
    output = server.output()
    assert "Started parent process" in output
    assert output.count("Application startup complete") == 2
    assert output.count("Application shutdown complete") == 2


def populated_database(binary: Path, env: dict[str, str], workdir: Path) -> dict[str, str]:
    """Serve once on workdir/db/tasks.db, register an owner, stop; return its headers."""
    server = serve(binary, workdir, env)
    with server, httpx.Client(base_url=server.url, timeout=10) as http:
        headers = register_owner(http, "backed-up")
    assert server.process is not None and server.process.returncode == 0
    return headers


def assert_owner_authenticates(
    binary: Path, env: dict[str, str], workdir: Path, db: Path, headers: dict[str, str]
) -> None:
    server = serve(binary, workdir, env)
    server.env["PATH_SQLITE"] = str(db)
    with server, httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.get("/v1/owners/backed-up", headers=headers)
        assert response.status_code == 200, response.text


def owner_names(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT name FROM owners")}


def test_backup_and_restore_in_a_folder(
    binary: Path, bare_env: dict[str, str], tmp_path: Path
) -> None:
    headers = populated_database(binary, bare_env, tmp_path)
    folder = tmp_path / "backups"
    where = Path(
        run(
            binary,
            "backup",
            env=bare_env,
            PATH_SQLITE=str(tmp_path / "db" / "tasks.db"),
            BACKUP_PATH_DIR_SQLITE=str(folder),
        ).strip()
    )
    assert where.parent == folder and where.name.endswith(".db.tar.gz")

    restored = tmp_path / "restored" / "tasks.db"
    out = run(
        binary,
        "restore",
        where.name,
        env=bare_env,
        PATH_SQLITE=str(restored),
        BACKUP_PATH_DIR_SQLITE=str(folder),
    )
    assert out.startswith(f"restored {where.name} into ")
    assert owner_names(restored) == {"backed-up"}
    assert_owner_authenticates(binary, bare_env, tmp_path, restored, headers)


def test_backup_and_restore_through_s3(
    binary: Path, bare_env: dict[str, str], tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = f"binary-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    s3 = {
        "BACKUP_METHOD_SQLITE": "OBJECT_STORAGE",
        "BACKUP_OBJECT_STORAGE_ENDPOINT": s3_endpoint,
        "BACKUP_OBJECT_STORAGE_BUCKET_NAME": bucket,
        "BACKUP_OBJECT_STORAGE_PATH": "nightly",
        "BACKUP_OBJECT_STORAGE_ACCESS_KEY": "test",
        "BACKUP_OBJECT_STORAGE_SECRET_KEY": "test",
        "S3_REGION": "us-east-1",
    }
    populated_database(binary, bare_env, tmp_path)
    db = str(tmp_path / "db" / "tasks.db")
    where = run(binary, "backup", env=bare_env, PATH_SQLITE=db, **s3).strip()
    assert where.startswith(f"s3://{bucket}/nightly/") and where.endswith(".db.tar.gz")

    restored = tmp_path / "restored" / "tasks.db"
    run(binary, "restore", where, env=bare_env, PATH_SQLITE=str(restored), **s3)
    assert owner_names(restored) == {"backed-up"}
