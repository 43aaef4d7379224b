"""`tasks-server import-original`, then `serve`, on a database the original wrote itself
(tests/fixtures/original): its clients' keys and ids keep working, its waiting tasks run at
their times against the loopback target it was given, paused ones stay paused (SPEC §19.1).

The fixture's due times are those of the day it was made; a copy moves two of them, as time
passing would: one waiting task falls due a few seconds into the test, and the retrying
task's next retry is overdue (it runs at once, as the original does at start-up).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import STARTUP_TIMEOUT_S, ServerProcess
from tests.polling import eventually
from tests.target import Target
from tests.unit.test_original import FIXTURES, TARGET, manifest

pytestmark = pytest.mark.timeout(STARTUP_TIMEOUT_S + 180)

OUR_KEY = "our-own-cipher-key-for-the-import"
CLI = str(Path(sys.executable).parent / "tasks-server")
DUE_IN_MS = 3_000


def import_original(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH_SQLITE": str(workdir / "db" / "tasks.db"), "CIPHER_KEY": OUR_KEY, "LOG": "0"}
    return subprocess.run(
        [CLI, "import-original", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def moved_copy(tmp_path: Path, version: str, due: int) -> Path:
    """The fixture with the waiting task due at `due` and the retry an hour overdue."""
    copy = tmp_path / f"original-{version}.db"
    copy.write_bytes((FIXTURES / f"{version}.db").read_bytes())
    tasks = manifest(version)["tasks"]
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "UPDATE queue SET estimateExecutionAt = ? WHERE id = ?", (due, tasks["waiting"])
        )
        overdue = due - 3_600_000
        conn.execute(
            "UPDATE config SET estimateNextRetryAt = ? WHERE id = ?", (overdue, tasks["retrying"])
        )
    return copy


def test_imported_tasks_run_at_their_times_for_the_originals_clients(tmp_path: Path) -> None:
    version = "beta.4"
    made, tasks = manifest(version), manifest(version)["tasks"]
    alice = made["owners"]["alice"]
    # The client of beta.4 names its owner with X-Task-Id.
    headers = {"Authorization": f"Bearer {alice['key']}", "X-Task-Id": alice["id"]}
    host, port = TARGET.removeprefix("http://").split(":")
    with Target(host, int(port)) as target:
        due = int(time.time() * 1000) + DUE_IN_MS
        source = moved_copy(tmp_path, version, due)
        imported = import_original(
            tmp_path, "--from", str(source), "--cipher-key", made["cipher_key"]
        )
        assert imported.returncode == 0, imported.stderr
        assert "imported 3 owners and 8 tasks" in imported.stdout
        with (
            ServerProcess(tmp_path, CIPHER_KEY=OUR_KEY) as server,
            httpx.Client(base_url=server.url, headers=headers, timeout=30) as http,
        ):
            assert http.get("/v1/tasks/alice-app").status_code == 200
            target.wait(lambda: bool(target.hits_for("/waiting")), timeout=60)
            (hit,) = target.hits_for("/waiting")
            assert hit.at_ms >= due, "ran before its time"
            assert hit.queue_id == tasks["waiting"]
            assert (hit.method, hit.headers["x-custom"]) == ("POST", "one")
            assert json.loads(hit.body) == {"greeting": "hello", "count": 3}
            target.wait(lambda: bool(target.hits_for("/fail-retrying")), timeout=30)
            (retry,) = target.hits_for("/fail-retrying")  # overdue: it ran at once
            # The retry the original had scheduled, counted as it counted it.
            assert (retry.headers["x-tasks-retry-count"], retry.headers["x-tasks-retry-limit"]) == (
                "1",
                "3",
            )
            # Imported owners sign their requests too (a secret is made at first need).
            assert (
                hit.headers["webhook-id"] == tasks["waiting"] and hit.headers["webhook-signature"]
            )

            def state(label: str) -> str:
                return str(http.get(f"/v1/queues/{tasks[label]}").json()["state"])

            eventually(lambda: state("waiting") == "SUCCESS", 30, "the waiting task done")
            assert state("paused") == "PAUSED" and not target.hits_for("/paused")
            assert state("waiting_at") == "RUNNING"  # due in 2100
            # Lists tell imported tasks apart as they do tasks registered here.
            (paused,) = http.get("/v1/queues", params={"state": "PAUSED"}).json()
            assert paused["method"] and paused["target"].startswith(TARGET), paused
            history = http.get("/v1/queues", params={"state": "SUCCESS", "limit": 100}).json()
            assert tasks["success"] in {q["id"] for q in history}
    again = import_original(tmp_path, "--from", str(source), "--cipher-key", made["cipher_key"])
    assert again.returncode == 0, again.stderr
    assert "imported 0 owners and 0 tasks (none)" in again.stdout


def test_dry_run_wrong_key_and_another_file(tmp_path: Path) -> None:
    fixture = str(FIXTURES / "beta.3.db")
    key = manifest("beta.3")["cipher_key"]
    dry = import_original(tmp_path, "--from", fixture, "--cipher-key", key, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would import 3 owners and 8 tasks" in dry.stdout
    assert not (tmp_path / "db").exists()  # not even an empty database was made
    for args, says in (
        (("--cipher-key", "wrong"), "the cipher key does not open the original's data"),
        (("--cipher-key", key, "--from", str(FIXTURES / "beta.3.json")), "is not a database"),
    ):
        failed = import_original(tmp_path, "--from", fixture, *args)
        assert failed.returncode == 2
        assert failed.stderr.count("\n") == 1 and says in failed.stderr, failed.stderr
    done = import_original(tmp_path, "--from", fixture, "--cipher-key", key)
    assert "imported 3 owners and 8 tasks" in done.stdout  # nothing was stored before
