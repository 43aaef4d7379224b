"""Outages of the database, on real processes: a full disk under SQLite, a PostgreSQL stopped
and started again, PostgreSQL out of connections.

While the database cannot take a request, the API answers 503 with `Retry-After` and an
action saying the request can be retried (never a 500), and `/health` answers 503; once the
database is back, both serve again, and on PostgreSQL the node listens for changes again.
Each test prints its counts of answers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
import pytest

from tests.api.test_metrics import _sample
from tests.integration.server import ServerProcess
from tests.polling import eventually
from tests.postgres import LocalServer, run_apart, with_database

pytestmark = pytest.mark.slow

T = TypeVar("T")
KEY = "outage-cipher-key"
RETRYABLE = "Retry the request after the delay in Retry-After"
OUTAGE_S = 3.0  # how long PostgreSQL stays stopped
DEADLINE_S = 30.0  # for what must happen once the database is back
LISTENING = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'"


class Api:
    """An owner's registrations on a running server, with every status answered counted."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30)
        owner = self.http.post("/v1/owners/register", json={"name": "outages"}).json()
        self.headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        self.answered: collections.Counter[int] = collections.Counter()

    def register(self) -> httpx.Response:
        body = {
            "httpRequest": {"url": "http://127.0.0.1:9/never", "method": "GET"},
            "config": {"executionDelay": 3_600_000},
        }
        response = self.http.post("/v1/queues/register", json=body, headers=self.headers)
        self.answered[response.status_code] += 1
        if response.status_code == 503:
            assert response.json()["action"] == RETRYABLE
            assert 1 <= int(response.headers["Retry-After"]) <= 10
        return response

    def health(self) -> int:
        return self.http.get("/health").status_code

    def served_503s(self) -> float | None:
        """The 503s the metrics counted on the registration route."""
        text = self.http.get("/metrics").text
        labels = {"route": "/v1/queues/register", "method": "POST", "status": "503"}
        return _sample(text, "tasks_http_requests_total", **labels)


@contextlib.contextmanager
def serving(server: ServerProcess) -> Iterator[Api]:
    with server:
        api = Api(server)
        try:
            yield api
        finally:
            api.http.close()
    log = server.output()
    # An outage is logged once per interval (10 s), not once per request.
    assert 1 <= log.count("answering 503") <= 3, log
    assert "unhandled error" not in log and "register failed" not in log, log


# --- SQLite: a full disk ------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="tasks-tmpfs-"))
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    finally:
        folder.rmdir()


def fill(folder: Path) -> Path:
    """Write a file in `folder` until its file system has no room left."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(1 << 20))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return path


def test_a_full_disk_answers_503_until_room_is_made(tmp_path: Path) -> None:
    with small_tmpfs("8m") as disk:
        server = ServerProcess(tmp_path, PATH_SQLITE=disk / "db" / "tasks.db", CIPHER_KEY=KEY)
        with serving(server) as api:
            assert api.register().status_code == 201
            assert api.health() == 200

            filler = fill(disk)
            full = [api.register().status_code for _ in range(20)]
            assert full == [503] * 20
            eventually(
                lambda: api.health() == 503, DEADLINE_S, "/health says 503 while the disk is full"
            )

            filler.unlink()
            eventually(
                lambda: api.register().status_code == 201, DEADLINE_S, "a registration once freed"
            )
            eventually(lambda: api.health() == 200, DEADLINE_S, "/health says 200 once freed")
            assert (api.served_503s() or 0) >= 20
            print(f"full disk: answers {dict(api.answered)}")
    assert api.answered[500] == 0


# --- PostgreSQL: stopped, and out of connections --------------------------------------------


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[LocalServer]:
    """A PostgreSQL server for these tests alone: they stop it and exhaust its connections."""
    with LocalServer() as server:
        yield server


async def _create_database(url: str, name: str, owner: str | None = None) -> None:
    conn = await asyncpg.connect(url)
    try:
        if owner is not None:
            await conn.execute(f'CREATE ROLE "{owner}" LOGIN CONNECTION LIMIT 8')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner or "tasks"}"')
    finally:
        await conn.close()


async def _listening(url: str, database: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(LISTENING, database))
    finally:
        await conn.close()


@contextlib.contextmanager
def crowded(url: str) -> Iterator[int]:
    """Connections as `url`'s role, taken until PostgreSQL refuses one (its limit reached) and
    held until the block ends, on an event loop of their own; yields how many."""

    async def take() -> list[asyncpg.Connection]:
        taken: list[asyncpg.Connection] = []
        while True:
            try:
                taken.append(await asyncpg.connect(url))
            except asyncpg.TooManyConnectionsError:
                return taken

    async def give_back(taken: list[asyncpg.Connection]) -> None:
        await asyncio.gather(*(conn.close() for conn in taken))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="crowd")
    thread.start()
    try:
        taken = asyncio.run_coroutine_threadsafe(take(), loop).result()
        try:
            yield len(taken)
        finally:
            asyncio.run_coroutine_threadsafe(give_back(taken), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_a_postgresql_restart_answers_503_then_serves_and_listens_again(
    tmp_path: Path, own_postgres: LocalServer
) -> None:
    run_apart(_create_database(own_postgres.url, "restarted"))
    url = with_database(own_postgres.url, "restarted")
    server = ServerProcess(tmp_path, DATABASE_URL=url, CIPHER_KEY=KEY)
    with serving(server) as api:
        assert api.register().status_code == 201
        assert run_apart(_listening(own_postgres.url, "restarted")) == 1

        own_postgres.stop()
        try:
            down = time.monotonic()
            while time.monotonic() - down < OUTAGE_S:  # the outage lasts this long
                assert api.register().status_code == 503
            assert api.health() == 503
            during = dict(api.answered)
        finally:
            own_postgres.start()
        eventually(
            lambda: api.register().status_code == 201, DEADLINE_S, "a registration once restarted"
        )
        assert api.health() == 200
        eventually(
            lambda: run_apart(_listening(own_postgres.url, "restarted")) == 1,
            DEADLINE_S,
            "the node listening for changes again",
        )
        print(f"PostgreSQL stopped {OUTAGE_S:g} s: answers {during}, then {dict(api.answered)}")
    assert api.answered[500] == 0


def test_postgresql_out_of_connections_answers_503(
    tmp_path: Path, own_postgres: LocalServer
) -> None:
    run_apart(_create_database(own_postgres.url, "limited", owner="limited"))
    url = with_database(own_postgres.url, "limited").replace("tasks@", "limited@")
    server = ServerProcess(tmp_path, DATABASE_URL=url, CIPHER_KEY=KEY)
    with serving(server) as api:
        assert api.register().status_code == 201

        with crowded(url) as taken, ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: api.register().status_code, range(48)))
        assert 503 in statuses
        assert set(statuses) <= {201, 503}
        during = dict(api.answered)
        eventually(
            lambda: api.register().status_code == 201, DEADLINE_S, "a registration once given back"
        )
        print(f"{taken} connections taken: answers {during}, then {dict(api.answered)}")
    assert api.answered[500] == 0
