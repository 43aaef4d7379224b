"""A throwaway PostgreSQL 15 server for the suite: initdb into a temp folder, a free port on
127.0.0.1, stopped at the end. As root it runs as the unprivileged ``postgres`` OS user
(PostgreSQL refuses to run as root). ``TEST_DATABASE_URL`` points the suite at an existing
server instead. Each test gets its own database, created from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.integration.server import free_port

START_TIMEOUT_S = 120  # pg_ctl -w polls: a bound for a loaded machine, free on a quiet one
T = TypeVar("T")


def run_apart(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a loop of its own in another thread: fixtures set databases up whether
    or not a test's event loop is running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, else the Debian path of version 15."""
    for candidate in _bindir_candidates():
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _bindir_candidates() -> Iterator[Path]:
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            yield Path(found.stdout.strip())
    yield Path("/usr/lib/postgresql/15/bin")
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class LocalServer:
    """A server of our own in a temp folder on a free port; `stop()` and `start()` again keep
    its data and its port (a test's outage)."""

    def __init__(self) -> None:
        bins = bindir()
        if bins is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
        self.folder = Path(tempfile.mkdtemp(prefix="tasks-pg-"))
        self.port = free_port()
        self.url = f"postgresql://tasks@127.0.0.1:{self.port}/postgres"
        run = _as_server_user()
        self._initdb = [*run, str(bins / "initdb")]
        self._pg_ctl = [*run, str(bins / "pg_ctl"), "-D", str(self.folder / "data")]

    def __enter__(self) -> LocalServer:
        try:
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres", "postgres")
            data = str(self.folder / "data")
            subprocess.run(
                [*self._initdb, "-D", data, "-U", "tasks", "-A", "trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
            )
            self.start()
        except BaseException:
            # The postmaster leads a session of its own (pg_ctl's doing), out of reach of a
            # group kill; a start that timed out or was interrupted may still come up.
            self.stop("immediate")
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        wait = ["-w", "-t", str(START_TIMEOUT_S)]
        subprocess.run(
            [*self._pg_ctl, "-l", str(self.folder / "log"), "-o", options, *wait, "start"],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop it: `fast` ends every session as a restart does, `immediate` as a crash."""
        subprocess.run([*self._pg_ctl, "-m", mode, "-w", "stop"], capture_output=True)


@contextmanager
def local_server() -> Iterator[str]:
    """Start a server of our own; yield the URL of its `postgres` database; stop it."""
    with LocalServer() as server:
        yield server.url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Databases:
    """Fresh databases on one server, each a copy of a migrated template."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.template = f"tasks_template_{os.getpid()}"
        self._count = 0

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url)

    async def prepare(self) -> None:
        """Create the template and migrate it once, so every copy starts at the schema."""
        from tasks_server.store.postgres import migrate_url

        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        await migrate_url(with_database(self.url, self.template))

    async def create(self) -> str:
        self._count += 1
        name = f"tasks_{os.getpid()}_{self._count}_{time.monotonic_ns()}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        return with_database(self.url, name)

    async def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def drop_template(self) -> None:
        await self.drop(with_database(self.url, self.template))
