"""Every process the bench starts, and what it reads of them: tasks-server nodes, the helper
processes (target, load generator, bare baseline), PostgreSQL, their CPU and memory.

Everything listens on 127.0.0.1; every process is stopped (SIGTERM, then SIGKILL) when the
`Processes` block ends, also on Ctrl-C or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tests.postgres import Databases, local_server

HOST = "127.0.0.1"
CIPHER_KEY = "tasks-server-bench-only-key"  # temp databases only
MAX_TASKS = 1_000_000_000  # the servers' MAX_TASKS_IN_QUEUE: no owner limit in the way
SERVER_COMMAND = [str(Path(sys.executable).parent / "tasks-server"), "serve"]
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
BACKEND_PID = "SELECT pg_backend_pid()"


class Processes:
    """Every process the bench starts; all are stopped on exit (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, **kwargs)
        self._running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> float:
        """Stop `proc`; the seconds it took to exit."""
        started = time.perf_counter()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ValueError):
            self._running.remove(proc)
        return time.perf_counter() - started

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self._running)):
            self.stop(proc, timeout=10.0)


def helper(module: str, *args: str) -> list[str]:
    """The command running one of this package's helper modules (`target`, `loadgen`, `bare`)."""
    return [sys.executable, "-m", f"{__package__}.{module}", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of `pid`, MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from the state field on (the command name may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` (all its threads)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid`, of the children it reaped, and of its children still running
    (a PostgreSQL server: the postmaster, its ended backends and its live ones; a node's
    worker processes, if it has any)."""
    ticks = sum(int(value) for value in _stat(pid)[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):  # a process that just ended
            fields = _stat(int(entry.name))
            if int(fields[1]) == pid:
                ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """A one-off control request (never a measured one)."""
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll `url` every 10 ms until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving")
        with contextlib.suppress(OSError):
            if http("GET", url, timeout=2.0)[0] == 200:
                return
        time.sleep(0.01)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


# --- servers ------------------------------------------------------------------------------


@dataclass(slots=True)
class Listener:
    """A process of ours serving HTTP on `HOST`."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(slots=True)
class Server(Listener):
    ready_s: float  # from process start to the first 200 from /health
    log: Path


def start_server(procs: Processes, workdir: Path, db: Path | str, name: str) -> Server:
    """`tasks-server serve` on a free port, throttle off, no per-owner limit in the way; on
    the SQLite file `db`, or on PostgreSQL when `db` is a database URL."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": HOST,
        "PORT": str(port),
        **({"DATABASE_URL": db} if isinstance(db, str) else {"PATH_SQLITE": str(db)}),
        "CIPHER_KEY": CIPHER_KEY,
        "LOG": "0",
        "MAX_THROTTLE_REQUEST": "0",
        "MAX_THROTTLE_TIME_WINDOW": "0",
        "MAX_TASKS_IN_QUEUE": str(MAX_TASKS),
        "MAX_IN_FLIGHT_PER_OWNER": "1000",  # the whole engine (MAX_IN_FLIGHT) for one owner
        "BACKUP_CRON_PATTERN_SQLITE": "0 0 1 1 *",
        "BACKUP_PATH_DIR_SQLITE": str(workdir / "backups"),
    }
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        started = time.perf_counter()
        # cwd is the temp dir: a developer's .env must not reach the bench.
        proc = procs.start(SERVER_COMMAND, env=env, cwd=workdir, stdout=out, stderr=out)
    try:
        wait_http(f"http://{HOST}:{port}/health", proc)
    except (RuntimeError, TimeoutError):
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    return Server(proc, port, time.perf_counter() - started, log)


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass(slots=True)
class PostgresServer:
    """One PostgreSQL server for the run (`postgres_server`): a fresh migrated database per
    configuration, and the postmaster's pid for its CPU use (None when not on this box)."""

    _databases: Databases
    _runner: asyncio.Runner
    postmaster: int | None = None

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh migrated database's URL, dropped afterwards."""
        url = self._runner.run(self._databases.create())
        try:
            if self.postmaster is None:
                self.postmaster = self._postmaster(url)
            yield url
        finally:
            self._runner.run(self._databases.drop(url))

    def _postmaster(self, url: str) -> int | None:
        """The parent of a backend of ours, when that runs on this box."""
        conn = self._runner.run(asyncpg.connect(url))
        try:
            backend = int(self._runner.run(conn.fetchval(BACKEND_PID)))
            with contextlib.suppress(OSError):  # no such process: a server elsewhere
                if Path(f"/proc/{backend}/comm").read_text().strip() == "postgres":
                    return int(_stat(backend)[1])
            return None
        finally:
            self._runner.run(conn.close())


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[PostgresServer]:
    """The server at `url`, or one of our own (initdb in a temp folder, as the suite does)."""
    with contextlib.ExitStack() as stack:
        if url is None:
            print("postgres: starting a server of its own (initdb in a temp folder)", flush=True)
            url = stack.enter_context(local_server())
        runner = stack.enter_context(asyncio.Runner())
        databases = Databases(url)
        runner.run(databases.prepare())
        try:
            yield PostgresServer(databases, runner)
        finally:
            runner.run(databases.drop_template())
