"""Benchmark tasks-server against baselines taken in the same run (SPEC §8).

Absolute numbers on a shared two-core host mean little, so every figure is printed beside a
baseline measured on this machine in this run, and the ratio is what compares across hosts:

1. register: authenticated ``POST /v1/queues/register`` under a closed-loop load from a raw
   asyncio generator in its own process, beside a bare Starlette JSON echo route on the same
   uvicorn settings; the generator's own ceiling (against the raw target) is printed too.
2. execution: N tasks due at one instant against a raw keep-alive target, beside a plain
   pycurl ``CurlMulti`` loop sending as many requests to the same target.
3. lateness: arrival of ``X-Tasks-Queue-Id`` at the target minus ``estimateExecutionAt``, at
   rest and while 1,000 tasks a second fall due with 100,000 waiting; and a burst of N tasks
   due at one instant, all started within N / (attempts per second) + 100 ms.
4. scale: server RSS and restart-to-serving time with 1,000,000 waiting tasks, beside the
   same server on an empty database.

Load generator, server and target share the machine's cores, so each figure is a floor.
Internal subcommands run the helper processes: ``_target`` (raw HTTP responder recording
arrivals), ``_bare`` (the Starlette baseline) and ``_loadgen`` (the load generator).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
import pycurl

HOST = "127.0.0.1"
CIPHER_KEY = "tasks-server-bench-only-key"  # temp databases only
SERVER_COMMAND = [str(Path(sys.executable).parent / "tasks-server"), "serve"]
SCRIPT = str(Path(__file__).resolve())
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_QUEUE_ID = re.compile(rb"\r\nx-tasks-queue-id:[ \t]*([0-9A-Z]{26})", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


@dataclass(frozen=True, slots=True)
class Profile:
    """How long and how big each measurement is."""

    name: str
    connections: int  # load generator connections (one owner each)
    warmup_s: float
    duration_s: float
    ceiling_s: float
    exec_tasks: int
    raw_concurrency: int
    waiting: int  # tasks waiting far ahead during the lateness runs
    rest_tasks: int
    rest_gap_ms: int
    load_s: int  # seconds of 1,000 tasks a second falling due
    burst: int
    scale_waiting: int
    pg_burst: int  # --postgres: tasks due at one instant
    pg_load_s: int  # --postgres: seconds of 1,000 tasks a second falling due
    pg_lead_ms: int = 2_500  # --postgres: seeded tasks fall due this long after seeding


FULL = Profile(
    name="full",
    connections=32,
    warmup_s=1.0,
    duration_s=10.0,
    ceiling_s=5.0,
    exec_tasks=20_000,
    raw_concurrency=1_000,
    waiting=100_000,
    rest_tasks=200,
    rest_gap_ms=50,
    load_s=15,
    burst=5_000,
    scale_waiting=1_000_000,
    pg_burst=10_000,
    pg_load_s=10,
)
QUICK = Profile(
    name="quick",
    connections=32,
    warmup_s=0.5,
    duration_s=2.5,
    ceiling_s=1.5,
    exec_tasks=5_000,
    raw_concurrency=1_000,
    waiting=100_000,
    rest_tasks=40,
    rest_gap_ms=50,
    load_s=3,
    burst=1_000,
    scale_waiting=100_000,
    pg_burst=2_000,
    pg_load_s=3,
)
# Only proves the bench still runs end to end (the test suite uses it): figures mean nothing.
TINY = replace(
    QUICK,
    name="tiny",
    connections=4,
    warmup_s=0.2,
    duration_s=0.5,
    ceiling_s=0.5,
    exec_tasks=200,
    waiting=1_000,
    rest_tasks=5,
    load_s=1,
    burst=100,
    scale_waiting=1_000,
    pg_burst=200,
    pg_load_s=1,
    pg_lead_ms=500,
)


# --- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One line of the table: a figure, its same-run baseline and the SPEC §8 target."""

    metric: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_of: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""  # printed after the result (the PostgreSQL rows: CPU use)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {_format_row(row)}", flush=True)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("req/s", "attempts/s", "tasks"):
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def _cells(row: Row) -> list[str]:
    ratio = row.ratio
    result = "" if row.passed is None else ("PASS" if row.passed else "MISS")
    baseline = _number(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_of:
        baseline += f" ({row.baseline_of})"
    return [
        f"{row.metric} ({row.unit})",
        _number(row.value, row.unit),
        baseline,
        "—" if ratio is None else f"{ratio:.2f}x",
        row.target or "—",
        result,
    ]


_HEADER = ["metric", "value", "baseline", "x base", "target", "result"]
_WIDTHS = [40, 10, 26, 7, 22, 6]


def _format_row(row: Row) -> str:
    line = _line(_cells(row))
    return f"{line}  {row.note}" if row.note else line


def _line(cells: list[str]) -> str:
    left, *rest = cells
    return f"{left:<{_WIDTHS[0]}}" + "".join(
        f" {cell:>{width}}" for cell, width in zip(rest, _WIDTHS[1:], strict=True)
    )


def print_table(report: Report) -> None:
    print()
    print(_line(_HEADER))
    print("-" * (sum(_WIDTHS) + len(_WIDTHS) - 1))
    for row in report.rows:
        print(_format_row(row))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of `values` (0 < q <= 100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- processes ----------------------------------------------------------------------------


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


# --- the raw target -----------------------------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _TargetState:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, float]] = []
        self.requests = 0

    def answer(self, head: bytes, now: float) -> bytes:
        self.requests += 1
        if head.startswith(b"GET /_"):
            return self._control(head)
        match = _QUEUE_ID.search(head)
        if match is not None:
            self.records.append((match.group(1), now))
        return _OK

    def _control(self, head: bytes) -> bytes:
        if head.startswith(b"GET /_dump "):
            body = b"".join(b"%s %.3f\n" % record for record in self.records)
            self.records = []
        else:
            body = b"%d %d\n" % (self.requests, len(self.records))
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
            len(body),
            body,
        )


class _TargetProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers 200 "ok" and notes when each queue id arrived."""

    def __init__(self, state: _TargetState) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        now = time.time_ns() / 1e6
        buffer = self.buffer + data if self.buffer else data
        answers: list[bytes] = []
        close = False
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end]
            match = _LENGTH.search(head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(buffer) < total:
                break
            buffer = buffer[total:]
            answers.append(self.state.answer(head, now))
            close = close or head.startswith(b"GET /_") or _CLOSE.search(head) is not None
        self.buffer = buffer
        assert self.transport is not None
        if answers:
            self.transport.write(b"".join(answers))
        if close:
            self.transport.close()


def target_main() -> None:
    """Serve on a free port, print it, run until SIGTERM."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        state = _TargetState()
        server = await loop.create_server(lambda: _TargetProtocol(state), HOST, 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(serve())


@dataclass(slots=True)
class Target:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def records(self) -> list[tuple[str, float]]:
        """Every request carrying a queue id since the last dump: (id, arrival epoch ms)."""
        _, body = http("GET", f"{self.url}/_dump")
        return [
            (queue_id, float(at)) for queue_id, at in map(str.split, body.decode().splitlines())
        ]

    def dump(self) -> dict[str, float]:
        """Arrival time (epoch ms) of each queue id seen since the last dump (first arrival)."""
        arrivals: dict[str, float] = {}
        for queue_id, at in self.records():
            arrivals.setdefault(queue_id, at)
        return arrivals

    def count(self) -> int:
        """Requests carrying a queue id, recorded and not yet dumped."""
        _, body = http("GET", f"{self.url}/_count")
        return int(body.split()[1])


def start_target(procs: Processes) -> Target:
    proc = procs.start([sys.executable, SCRIPT, "_target"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise RuntimeError("the raw target did not start")
    return Target(proc, int(line.split()[1]))


# --- the bare Starlette baseline ----------------------------------------------------------


def bare_main(port: int) -> None:
    """A Starlette app with one JSON echo route, on `tasks-server serve`'s uvicorn settings."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tasks_server.cli import UVICORN_OPTIONS

    async def echo(request: Request) -> Response:
        document = orjson.loads(await request.body())
        return Response(orjson.dumps(document), 201, media_type="application/json")

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, **UVICORN_OPTIONS)).run()


# --- the load generator -------------------------------------------------------------------


class _LoadRun:
    def __init__(self, connections: int, warmup_s: float, duration_s: float) -> None:
        now = time.perf_counter()
        self.measure_from = now + warmup_s
        self.stop_at = self.measure_from + duration_s
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.open = connections
        self.finished = asyncio.get_running_loop().create_future()

    def completed(self, status: int, started: float, now: float) -> None:
        if self.measure_from <= now <= self.stop_at:
            self.latencies.append(now - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.finished.done():
            self.finished.set_result(None)


class _LoadClient(asyncio.Protocol):
    """One keep-alive connection sending the same request again as soon as it is answered."""

    def __init__(self, run: _LoadRun, request: bytes) -> None:
        self.run = run
        self.request = request
        self.buffer = b""
        self.sent = 0.0
        self.done = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        match = _LENGTH.search(self.buffer, 0, end)
        if match is None:
            raise RuntimeError("a response without Content-Length")
        total = end + 4 + int(match.group(1))
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        self.buffer = self.buffer[total:]
        now = time.perf_counter()
        self.run.completed(status, self.sent, now)
        if now < self.run.stop_at:
            self._send()
        else:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            assert self.transport is not None
            self.transport.close()
            self.run.closed()


def loadgen_main() -> None:
    """Read a spec from stdin, load `port` with it, print the figures as JSON."""
    import uvloop

    spec = json.load(sys.stdin)
    requests = [request.encode("latin-1") for request in spec["requests"]]
    ports = spec["ports"]

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        load = _LoadRun(len(requests), spec["warmup_s"], spec["duration_s"])
        for request, port in zip(requests, ports, strict=True):
            await loop.create_connection(lambda r=request: _LoadClient(load, r), HOST, port)
        await asyncio.wait_for(load.finished, spec["warmup_s"] + spec["duration_s"] + 30)
        latencies = [seconds * 1000 for seconds in load.latencies]
        return {
            "requests": len(latencies),
            "rps": len(latencies) / spec["duration_s"],
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=float("nan")),
            "statuses": load.statuses,
            "cpu_s": time.process_time(),
        }

    print(json.dumps(uvloop.run(run())), flush=True)


def load(
    procs: Processes,
    port: int | Sequence[int],
    requests: list[bytes],
    warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:
    """Run the load generator in its own process against `port` (or a port per request)."""
    spec = {
        "ports": [port] * len(requests) if isinstance(port, int) else list(port),
        "requests": [request.decode("latin-1") for request in requests],
        "warmup_s": warmup_s,
        "duration_s": duration_s,
    }
    proc = procs.start(
        [sys.executable, SCRIPT, "_loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    out, _ = proc.communicate(json.dumps(spec).encode(), timeout=warmup_s + duration_s + 60)
    procs.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError("the load generator failed")
    result: dict[str, Any] = json.loads(out)
    return result


def post_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- servers and databases ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.id}


@dataclass(slots=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    ready_s: float  # from process start to the first 200 from /health
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


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
        "MAX_TASKS_IN_QUEUE": "1000000000",
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


def new_database(db: Path | str, owner_names: Sequence[str]) -> list[Owner]:
    """A migrated database (a SQLite file, or a PostgreSQL URL) with these owners, through
    the store layer."""
    from ulid import ULID

    from tasks_server.api.auth import digest, new_key
    from tasks_server.store.postgres import PostgresStore
    from tasks_server.store.sqlite import SqliteStore
    from tasks_server.timeutil import now_ms

    made = [Owner(str(ULID()), name, new_key()) for name in owner_names]

    async def create() -> None:
        store = PostgresStore(db) if isinstance(db, str) else SqliteStore(db)
        await store.open()
        try:
            for owner in made:
                await store.create_owner(
                    owner_id=owner.id,
                    name=owner.name,
                    key_digest=digest(owner.key),
                    created_at=now_ms(),
                )
        finally:
            await store.close()

    asyncio.run(create())
    return made


def new_ids(count: int) -> list[str]:
    """`count` distinct ULIDs: one random 20-char prefix and a 6-char counter (fast for 1M)."""
    from ulid import ULID

    prefix = str(ULID())[:20]
    pairs = _PAIRS
    return [
        prefix + pairs[i >> 20] + pairs[(i >> 10) & 1023] + pairs[i & 1023] for i in range(count)
    ]


SEED_QUEUE = """
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, request)
VALUES (?, ?, 'RUNNING', ?, ?, ?)
"""


def sealed_tasks(
    owner: Owner, dues: Sequence[int], url: str
) -> tuple[list[str], list[tuple[str, str, int, int, bytes]]]:
    """RUNNING GET tasks due at `dues`: their ids, and their rows (id, owner, created, due,
    request) for the `queues` table.

    The request blob is what registration stores: the validated document sealed by the
    task codec with the row id as associated data.
    """
    from tasks_server.codec import TaskCodec
    from tasks_server.crypto import Cipher
    from tasks_server.models.queues import QueueRegistration
    from tasks_server.timeutil import now_ms

    codec = TaskCodec(Cipher.from_secret(CIPHER_KEY))
    reg = QueueRegistration.model_validate(
        {"httpRequest": {"url": url, "method": "GET"}}, context={"check_future": False}
    )
    document = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
    document.pop("metadata", None)
    plain = orjson.dumps(document)
    ids = new_ids(len(dues))
    created = now_ms()
    rows = [
        (queue_id, owner.id, created, due, codec.seal(plain, queue_id, "request"))
        for queue_id, due in zip(ids, dues, strict=True)
    ]
    return ids, rows


def seed_tasks(db: Path, owner: Owner, dues: Sequence[int], url: str) -> list[str]:
    """Insert RUNNING GET tasks due at `dues` in one transaction; their ids, in order."""
    ids, rows = sealed_tasks(owner, dues, url)
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(SEED_QUEUE, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ids


COUNT_RUNNING = "SELECT count(*) FROM queues WHERE state = 'RUNNING' AND estimate_execution_at <= "
EVER = 2**62  # later than any due time


def count_running(db: Path, due_by: int = EVER) -> int:
    """RUNNING tasks due by `due_by`, counted on the scheduler's partial index (cheap: polled
    while measuring)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        (count,) = conn.execute(COUNT_RUNNING + "?", (due_by,)).fetchone()
    finally:
        conn.close()
    return int(count)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- 1. registration ----------------------------------------------------------------------


def register_body(target: Target) -> bytes:
    """A registration with data, retry and metadata, due in a day (never run while measured)."""
    return orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "POST", "data": {"n": 1}},
            "config": {"executionDelay": 86_400_000, "retry": 2, "retryInterval": 1000},
            "metadata": {"bench": "register"},
        }
    )


def bench_register(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print("register: generator ceiling, bare route, tasks-server", flush=True)
    target = start_target(procs)
    body = register_body(target)
    names = [f"bench-owner-{i}" for i in range(profile.connections)]
    owners = new_database(work / "register.db", names)

    def requests(port: int, path: str) -> list[bytes]:
        return [post_request(port, path, body, owner.headers) for owner in owners]

    ceiling = load(
        procs, target.port, requests(target.port, "/ceiling"), profile.warmup_s, profile.ceiling_s
    )
    procs.stop(target.proc)

    port = free_port()
    bare_proc = procs.start([sys.executable, SCRIPT, "_bare", str(port)])
    _wait_listening(port, bare_proc)
    cpu_before = cpu_s(bare_proc.pid)
    bare = load(procs, port, requests(port, "/echo"), profile.warmup_s, profile.duration_s)
    bare["server_cpu_s"] = cpu_s(bare_proc.pid) - cpu_before
    procs.stop(bare_proc)

    server = start_server(procs, work, work / "register.db", "register")
    cpu_before = cpu_s(server.proc.pid)
    measured = load(
        procs,
        server.port,
        requests(server.port, "/v1/queues/register"),
        profile.warmup_s,
        profile.duration_s,
    )
    measured["server_cpu_s"] = cpu_s(server.proc.pid) - cpu_before
    procs.stop(server.proc)

    window = profile.warmup_s + profile.duration_s
    for figures in (bare, measured):  # server CPU over warmup + window, per request answered
        figures["cpu_us_per_request"] = figures["server_cpu_s"] / (figures["rps"] * window) * 1e6
    report.details["register"] = {"ceiling": ceiling, "bare": bare, "server": measured}
    errors = sum(n for status, n in measured["statuses"].items() if status != "201")
    if errors:
        print(f"  ! {errors} registrations did not answer 201: {measured['statuses']}")
    rps = measured["rps"]
    report.add(
        Row(
            "register throughput",
            "req/s",
            rps,
            bare["rps"],
            "bare route",
            ">=0.33x bare, >=2,000",
            rps >= bare["rps"] / 3 and rps >= 2_000 and not errors,
        )
    )
    for q in ("p50", "p99"):
        report.add(
            Row(f"register latency {q}", "ms", measured[f"{q}_ms"], bare[f"{q}_ms"], "bare route")
        )
    report.add(Row("load generator ceiling", "req/s", ceiling["rps"], rps, "register"))


GROWN_OWNER = 50_000  # tasks the owner already holds in the second registration run
GROWTH_ROUNDS = 3  # windows per owner, alternating: one window each is mostly host noise


def bench_register_growth(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    """Registering into an owner holding 50,000 tasks against an empty owner (O(1) limit).

    Both servers run side by side and take turns under load, `GROWTH_ROUNDS` windows each,
    the order swapped every round; each rate is the median of its windows. A single window
    per owner moved the ratio from 0.8x to 1.35x between runs of the same code."""
    print(f"register growth: an empty owner against one holding {GROWN_OWNER:,}", flush=True)
    target = start_target(procs)
    body = orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "GET"},
            "config": {"executionDelay": 86_400_000},
        }
    )
    requests: dict[str, list[bytes]] = {}
    servers: list[Server] = []
    for label, waiting in (("empty", 0), ("grown", GROWN_OWNER)):
        db = work / f"growth-{label}.db"
        (owner,) = new_database(db, [f"growth-{label}"])
        if waiting:
            seed_tasks(db, owner, [now_ms() + 86_400_000] * waiting, f"{target.url}/never")
        server = start_server(procs, work, db, f"growth-{label}")
        servers.append(server)
        request = post_request(server.port, "/v1/queues/register", body, owner.headers)
        requests[label] = [request] * profile.connections
    ports = {"empty": servers[0].port, "grown": servers[1].port}
    windows: dict[str, list[float]] = {"empty": [], "grown": []}
    window_s = 2 * profile.duration_s / GROWTH_ROUNDS  # twice the time of one window each
    for round_ in range(GROWTH_ROUNDS):
        for label in ("empty", "grown") if round_ % 2 == 0 else ("grown", "empty"):
            measured = load(procs, ports[label], requests[label], profile.warmup_s, window_s)
            windows[label].append(measured["rps"])
    for server in servers:
        procs.stop(server.proc)
    procs.stop(target.proc)
    rates = {label: percentile(rps, 50) for label, rps in windows.items()}
    report.details["register_growth"] = {**rates, "windows": windows}
    ratio = rates["grown"] / rates["empty"]
    report.add(
        Row(
            f"register into an owner with {GROWN_OWNER:,}",
            "req/s",
            rates["grown"],
            rates["empty"],
            "empty owner",
            ">=0.9x empty",
            ratio >= 0.9,
        )
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bare baseline server exited")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.02)
    raise TimeoutError("the bare baseline server did not start")


# --- 2. execution -------------------------------------------------------------------------


def raw_curl(url: str, count: int, concurrency: int) -> float:
    """Requests per second of a plain CurlMulti loop (handles reused, keep-alive)."""
    multi = pycurl.CurlMulti()
    free: list[pycurl.Curl] = []
    for _ in range(min(concurrency, count)):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROXY, "")
        free.append(curl)
    handles = list(free)
    ids = new_ids(count)
    started = done = failed = 0
    begin = time.perf_counter()
    while done < count:
        while free and started < count:
            curl = free.pop()
            curl.setopt(pycurl.HTTPHEADER, [f"X-Tasks-Queue-Id: {ids[started]}"])
            multi.add_handle(curl)
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        finished: list[pycurl.Curl] = []
        while True:
            queued, ok, errors = multi.info_read()
            finished += ok
            finished += [curl for curl, _, _ in errors]
            failed += len(errors)
            if not queued:
                break
        for curl in finished:
            multi.remove_handle(curl)
            free.append(curl)
        done += len(finished)
        if not finished:
            multi.select(0.01)
    elapsed = time.perf_counter() - begin
    for curl in handles:
        curl.close()
    multi.close()
    if failed:
        print(f"  ! raw curl: {failed} requests failed")
    return count / elapsed


def bench_execution(profile: Profile, procs: Processes, work: Path, report: Report) -> float:
    """Attempts per second of a burst due at once; returns the rate (for the burst bound)."""
    print(f"execution: {profile.exec_tasks:,} tasks due at once", flush=True)
    target = start_target(procs)
    raw = raw_curl(f"{target.url}/raw", profile.exec_tasks, profile.raw_concurrency)
    target.dump()

    db = work / "execution.db"
    (owner,) = new_database(db, ["bench-execution"])
    server = start_server(procs, work, db, "execution")
    due = now_ms() + 2_500
    seed_tasks(db, owner, [due] * profile.exec_tasks, f"{target.url}/task")
    cpu_before = cpu_s(server.proc.pid)
    done_at = _wait_done(lambda: count_running(db), timeout=300)
    server_cpu = cpu_s(server.proc.pid) - cpu_before
    procs.stop(server.proc)
    states = dict(sqlite3.connect(db).execute("SELECT state, count(*) FROM queues GROUP BY state"))
    arrivals = sorted(target.dump().values())
    procs.stop(target.proc)

    rate = profile.exec_tasks / (done_at - due / 1000)
    started_rate = len(arrivals) / max(1e-3, (arrivals[-1] - due) / 1000) if arrivals else 0.0
    report.details["execution"] = {
        "tasks": profile.exec_tasks,
        "raw_concurrency": profile.raw_concurrency,
        "raw_rps": raw,
        "attempts_per_s": rate,
        "started_per_s": started_rate,
        "first_start_after_due_ms": arrivals[0] - due if arrivals else None,
        "server_cpu_us_per_attempt": server_cpu / profile.exec_tasks * 1e6,
        "states": states,
    }
    if states != {"SUCCESS": profile.exec_tasks}:
        print(f"  ! not every task succeeded: {states}")
    report.add(
        Row(
            "execution (recorded)",
            "attempts/s",
            rate,
            raw,
            "raw CurlMulti",
            ">=3,000",
            rate >= 3_000,
        )
    )
    return rate


BURST = 5_000


def bench_burst(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    """5,000 tasks due at one instant: drain rate beside the raw CurlMulti loop (SPEC §14)."""
    print(f"burst: {BURST:,} tasks due at one instant", flush=True)
    target = start_target(procs)
    raw = raw_curl(f"{target.url}/raw", BURST, profile.raw_concurrency)
    target.dump()
    db = work / "burst.db"
    (owner,) = new_database(db, ["bench-burst"])
    server = start_server(procs, work, db, "burst")
    due = now_ms() + 2_500
    seed_tasks(db, owner, [due] * BURST, f"{target.url}/burst")
    done_at = _wait_done(lambda: count_running(db), timeout=300)
    procs.stop(server.proc)
    arrivals = sorted(target.dump().values())
    procs.stop(target.proc)
    rate = BURST / (done_at - due / 1000)
    late = [arrival - due for arrival in arrivals]
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("nan")
    report.details["burst"] = {"tasks": BURST, "raw_rps": raw, "drain_per_s": rate, "p99_ms": p99}
    report.add(
        Row(
            f"burst of {BURST:,} drained",
            "attempts/s",
            rate,
            raw,
            "raw CurlMulti",
            ">=0.2x raw",
            rate >= 0.2 * raw and len(arrivals) == BURST,
        )
    )
    report.add(Row(f"burst of {BURST:,}: start lateness p99", "ms", p99, None, ""))


def _wait_done(running: Callable[[], int], timeout: float) -> float:
    """Poll until no task is RUNNING; the wall-clock time (s) when that was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running() == 0:
            return time.time()
        time.sleep(0.02)
    raise TimeoutError("tasks were still RUNNING at the deadline")


# --- 3. lateness --------------------------------------------------------------------------


def bench_lateness(
    profile: Profile, procs: Processes, work: Path, report: Report, rate: float | None
) -> None:
    print(
        f"lateness: at rest, 1,000/s for {profile.load_s} s with {profile.waiting:,} waiting,"
        f" burst of {profile.burst:,}",
        flush=True,
    )
    target = start_target(procs)
    db = work / "lateness.db"
    (owner,) = new_database(db, ["bench-lateness"])
    far = now_ms() + 3_600_000
    seed_tasks(db, owner, [far + i for i in range(profile.waiting)], f"{target.url}/waiting")
    server = start_server(procs, work, db, "lateness")
    time.sleep(0.5)

    rest_at = now_ms() + 4_000
    rest = [rest_at + i * profile.rest_gap_ms for i in range(profile.rest_tasks)]
    load_at = rest[-1] + 1_000
    steady = [load_at + i for i in range(profile.load_s * 1_000)]
    burst_at = steady[-1] + 1_500
    burst = [burst_at] * profile.burst
    url = f"{target.url}/due"
    ids = [seed_tasks(db, owner, dues, url) for dues in (rest, steady, burst)]
    expected = sum(len(part) for part in ids)
    budget = profile.burst / (rate or 3_000) * 1000 + 100
    _wait_arrivals(target, expected, until_ms=burst_at + max(2_000, 3 * budget))
    arrivals = target.dump()
    procs.stop(server.proc)
    procs.stop(target.proc)

    lateness = {
        name: _lateness(part, dues, arrivals)
        for name, part, dues in zip(
            ("rest", "load", "burst"), ids, (rest, steady, burst), strict=True
        )
    }
    report.details["lateness"] = lateness
    for name, figures in lateness.items():
        if figures["missing"]:
            print(f"  ! {figures['missing']} {name} tasks never reached the target")
    for q in ("p50", "p99", "max"):
        report.add(Row(f"lateness at rest {q}", "ms", lateness["rest"][q]))
    load_figures = lateness["load"]
    complete = not load_figures["missing"]
    for q, limit in (("p50", 2), ("p99", 20)):
        report.add(
            Row(
                f"lateness 1,000/s {q}",
                "ms",
                load_figures[q],
                lateness["rest"][q],
                "at rest",
                f"<={limit}",
                complete and load_figures[q] <= limit,
            )
        )
    report.add(
        Row("lateness 1,000/s max", "ms", load_figures["max"], lateness["rest"]["max"], "at rest")
    )
    last = lateness["burst"]["max"]
    report.add(
        Row(
            f"burst of {profile.burst:,}: all started",
            "ms",
            last,
            budget,
            "N/rate+100",
            f"<={budget:,.0f}",
            not lateness["burst"]["missing"] and last <= budget,
        )
    )


def _wait_arrivals(target: Target, expected: int, until_ms: float) -> None:
    """Until the target saw `expected` queue ids, or the wall clock passes `until_ms`."""
    while now_ms() < until_ms:
        if target.count() >= expected:
            return
        time.sleep(0.1)


def _lateness(ids: list[str], dues: list[int], arrivals: dict[str, float]) -> dict[str, Any]:
    late = [arrivals[i] - due for i, due in zip(ids, dues, strict=True) if i in arrivals]
    return {
        "tasks": len(ids),
        "missing": len(ids) - len(late),
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late, default=float("nan")),
        "min": min(late, default=float("nan")),
    }


# --- 4. scale -----------------------------------------------------------------------------


def bench_scale(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    waiting = profile.scale_waiting
    print(f"scale: {waiting:,} waiting tasks, beside an empty database", flush=True)
    empty = _scale_probe(procs, work, "scale-empty", 0)
    full = _scale_probe(procs, work, "scale-full", waiting)
    report.details["scale"] = {"empty": empty, "waiting": full, "tasks": waiting}
    label = f"{waiting // 1_000_000}M" if waiting >= 1_000_000 else f"{waiting // 1_000}k"
    report.add(
        Row(
            f"RSS with {label} waiting",
            "MB",
            full["rss_mb"],
            empty["rss_mb"],
            "empty db",
            "<=150",
            full["rss_mb"] <= 150,
        )
    )
    report.add(
        Row(
            f"restart to serving, {label} waiting",
            "s",
            full["restart_s"],
            empty["restart_s"],
            "empty db",
            "<=2",
            full["restart_s"] <= 2,
        )
    )


def _scale_probe(procs: Processes, work: Path, name: str, waiting: int) -> dict[str, Any]:
    """Start, stop, start again (timed), use the API a little, then read the RSS."""
    db = work / f"{name}.db"
    (owner,) = new_database(db, [name])
    seeded = time.perf_counter()
    if waiting:
        far = now_ms() + 3_600_000
        seed_tasks(db, owner, [far + i * 10 for i in range(waiting)], "http://127.0.0.1:9/never")
    seed_s = time.perf_counter() - seeded
    first = start_server(procs, work, db, name)
    procs.stop(first.proc)
    server = start_server(procs, work, db, name)
    used = time.perf_counter()
    body = {
        "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
        "config": {"executionDelay": 86_400_000},
    }
    for _ in range(20):
        http("POST", f"{server.url}/v1/queues/register", body, owner.headers)
    query = "limit=1000&order=estimateExecutionAt&state=RUNNING"
    http("GET", f"{server.url}/v1/queues?{query}", headers=owner.headers)
    status, record = http("GET", f"{server.url}/v1/owners/{owner.name}", headers=owner.headers)
    api_s = time.perf_counter() - used
    time.sleep(1.0)  # a couple of scheduler polls over the waiting tasks
    rss, peak = rss_mb(server.proc.pid)
    stop_s = procs.stop(server.proc)
    return {
        "seed_s": seed_s,
        "first_start_s": first.ready_s,
        "restart_s": server.ready_s,
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "api_calls_s": api_s,
        "tasks_in_queue": orjson.loads(record).get("tasksInQueue") if status == 200 else None,
        "stop_s": stop_s,
    }


# --- 5. PostgreSQL: nodes on one database (SPEC §14) ------------------------------------

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATIONS = (("sqlite", 1), ("pg", 1), ("pg", 2), ("pg", 3))
SCALE_TARGET = 1.3  # 3 nodes against 1, attempts/s
LATENESS_TARGET_MS = 50
SEED_COLUMNS = ["id", "owner_id", "created_at", "estimate_execution_at", "request", "state"]
BACKEND_PID = "SELECT pg_backend_pid()"


def suite_postgres() -> Any:
    """`tests/postgres.py`: the suite's throwaway-server code, shared rather than copied."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import tests.postgres

    return tests.postgres


def label(engine: str, nodes: int) -> str:
    return "sqlite" if engine == "sqlite" else f"pg {nodes} node{'s' if nodes > 1 else ''}"


class BenchDb(Protocol):
    """One configuration's database: what the nodes and the seeding are pointed at."""

    location: Path | str  # a SQLite file or a PostgreSQL URL (see `start_server`)

    def seed(self, owner: Owner, dues: Sequence[int], url: str) -> list[str]: ...

    def running(self, due_by: int) -> int: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class SqliteDb:
    location: Path

    def seed(self, owner: Owner, dues: Sequence[int], url: str) -> list[str]:
        return seed_tasks(self.location, owner, dues, url)

    def running(self, due_by: int) -> int:
        return count_running(self.location, due_by)

    def close(self) -> None:
        pass


class PostgresServer:
    """One PostgreSQL server for the run (started here, or given): a fresh migrated database
    per configuration, and the postmaster's pid for its CPU use (None when not on this box)."""

    def __init__(self, url: str) -> None:
        self._databases = suite_postgres().Databases(url)
        self.runner = asyncio.Runner()
        self.runner.run(self._databases.prepare())
        self.postmaster: int | None = None

    def database(self) -> PostgresDb:
        db = PostgresDb(self, self.runner.run(self._databases.create()))
        if self.postmaster is None:
            backend = self.runner.run(db.conn.fetchval(BACKEND_PID))
            with contextlib.suppress(OSError):  # no such process: a server elsewhere
                if Path(f"/proc/{backend}/comm").read_text().strip() == "postgres":
                    self.postmaster = int(_stat(backend)[1])
        return db

    def drop(self, url: str) -> None:
        self.runner.run(self._databases.drop(url))

    def close(self) -> None:
        try:
            self.runner.run(self._databases.drop_template())
        finally:
            self.runner.close()


class PostgresDb:
    def __init__(self, server: PostgresServer, url: str) -> None:
        import asyncpg

        self._server = server
        self.location = url
        self.conn = server.runner.run(asyncpg.connect(url))

    def seed(self, owner: Owner, dues: Sequence[int], url: str) -> list[str]:
        ids, rows = sealed_tasks(owner, dues, url)
        records = [(*row, "RUNNING") for row in rows]
        copy = self.conn.copy_records_to_table("queues", records=records, columns=SEED_COLUMNS)
        self._server.runner.run(copy)
        return ids

    def running(self, due_by: int) -> int:
        return int(self._server.runner.run(self.conn.fetchval(COUNT_RUNNING + "$1", due_by)))

    def close(self) -> None:
        try:
            self._server.runner.run(self.conn.close())
        finally:
            self._server.drop(self.location)


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[PostgresServer]:
    """The server at `url`, or one of our own (initdb in a temp folder, as the suite does)."""
    with contextlib.ExitStack() as stack:
        if url is None:
            print("postgres: starting a server of its own (initdb in a temp folder)", flush=True)
            url = stack.enter_context(suite_postgres().local_server())
        server = PostgresServer(url)
        try:
            yield server
        finally:
            server.close()


@dataclass(slots=True)
class Cluster:
    """`nodes` tasks-server processes on one database, and what measures their CPU use."""

    name: str
    db: BenchDb
    servers: list[Server]
    owners: list[Owner]
    target: Target
    postmaster: int | None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the nodes, PostgreSQL, and what loads them (the target and
        this process's polling; `cores` adds the load generator's)."""
        return {
            "wall": time.perf_counter(),
            "nodes": sum(tree_cpu_s(server.proc.pid) for server in self.servers),
            "pg": float("nan") if self.postmaster is None else tree_cpu_s(self.postmaster),
            "load": cpu_s(self.target.proc.pid) + time.process_time(),
        }

    def cores(
        self, before: dict[str, float], after: dict[str, float], load_s: float = 0.0
    ) -> dict[str, float]:
        """Cores used between two `cpu()` samples (CPU seconds over wall seconds)."""
        wall = after["wall"] - before["wall"]
        used = {name: after[name] - before[name] for name in ("nodes", "pg", "load")}
        used["load"] += load_s
        return {name: seconds / wall for name, seconds in used.items()}


def cpu_note(cores: dict[str, float]) -> str:
    pg = "—" if math.isnan(cores["pg"]) else f"{cores['pg']:.2f}"  # nan: not measurable
    return f"cores: nodes {cores['nodes']:.2f} pg {pg} load {cores['load']:.2f}"


def pg_register(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """Closed-loop registrations, the generator's connections spread over the nodes."""
    body = register_body(cluster.target)
    nodes = [cluster.servers[i % len(cluster.servers)] for i in range(len(cluster.owners))]
    requests = [
        post_request(server.port, "/v1/queues/register", body, owner.headers)
        for owner, server in zip(cluster.owners, nodes, strict=True)
    ]
    before = cluster.cpu()
    measured = load(
        procs, [server.port for server in nodes], requests, profile.warmup_s, profile.duration_s
    )
    measured["cores"] = cluster.cores(before, cluster.cpu(), measured["cpu_s"])
    measured["value"] = measured["rps"]
    errors = sum(n for status, n in measured["statuses"].items() if status != "201")
    if errors:
        print(f"  ! {cluster.name}: {errors} registrations did not answer 201")
    return measured


def pg_execution(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """A burst due at one instant, drained; how often each task reached the target."""
    cluster.target.records()
    due = now_ms() + profile.pg_lead_ms
    ids = cluster.db.seed(cluster.owners[0], [due] * profile.pg_burst, f"{cluster.target.url}/b")
    time.sleep(max(0.0, due / 1000 - time.time()))  # CPU is counted from the due instant
    before = cluster.cpu()
    done_at = _wait_done(lambda: cluster.db.running(due), timeout=300)
    cores = cluster.cores(before, cluster.cpu())
    seen = Counter(queue_id for queue_id, _ in cluster.target.records())
    return {
        "value": profile.pg_burst / (done_at - due / 1000),
        "cores": cores,
        "twice": sum(count - 1 for count in seen.values() if count > 1),
        "never": len(set(ids) - set(seen)),
    }


def pg_lateness(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """Tasks due one per millisecond for `pg_load_s` seconds: arrival - due time."""
    cluster.target.records()
    start = now_ms() + profile.pg_lead_ms
    dues = [start + i for i in range(profile.pg_load_s * 1_000)]
    ids = cluster.db.seed(cluster.owners[0], dues, f"{cluster.target.url}/spread")
    time.sleep(max(0.0, start / 1000 - time.time()))
    before = cluster.cpu()
    _wait_arrivals(cluster.target, len(ids), until_ms=dues[-1] + 10_000)
    cores = cluster.cores(before, cluster.cpu())
    arrivals = {}
    for queue_id, at in cluster.target.records():
        arrivals.setdefault(queue_id, at)
    return {**_lateness(ids, dues, arrivals), "cores": cores}


PG_MEASURES = {"register": pg_register, "execution": pg_execution, "lateness": pg_lateness}
POSTGRES_PHASES = tuple(PG_MEASURES)


def bench_postgres(
    profile: Profile,
    phases: Sequence[str],
    procs: Processes,
    work: Path,
    report: Report,
    database_url: str | None,
) -> None:
    """Each phase on SQLite (one node) and on 1, 2 and 3 nodes sharing one PostgreSQL."""
    figures: dict[str, dict[str, dict[str, Any]]] = {phase: {} for phase in phases}
    with postgres_server(database_url) as pg:
        target = start_target(procs)
        for engine, count in CONFIGURATIONS:
            name = label(engine, count)
            print(f"postgres: {name}: {', '.join(phases)}", flush=True)
            db: BenchDb = (
                SqliteDb(work / f"{engine}-{count}.db") if engine == "sqlite" else pg.database()
            )
            try:
                owners = new_database(
                    db.location, [f"owner-{i}" for i in range(profile.connections)]
                )
                servers = [
                    start_server(procs, work, db.location, f"{name}-{n}") for n in range(count)
                ]
                cluster = Cluster(
                    name, db, servers, owners, target, pg.postmaster if engine == "pg" else None
                )
                for phase in phases:
                    figures[phase][name] = PG_MEASURES[phase](profile, procs, cluster)
                for server in servers:
                    procs.stop(server.proc)
            finally:
                db.close()
        procs.stop(target.proc)
    report.details["postgres"] = figures
    for phase in phases:
        for row in _pg_rows(profile, phase, figures[phase]):
            report.add(row)


def _pg_rows(profile: Profile, phase: str, figures: dict[str, dict[str, Any]]) -> Iterator[Row]:
    """Each configuration beside the one before it: pg 1 node beside SQLite, more nodes
    beside pg 1 node; SPEC §14's targets on the PostgreSQL rows."""
    for engine, count in CONFIGURATIONS:
        name = label(engine, count)
        figure = figures[name]
        base_name = None if engine == "sqlite" else label(*CONFIGURATIONS[0 if count == 1 else 1])
        baseline = None if base_name is None else figures[base_name].get("value")
        note = cpu_note(figure["cores"])
        if phase == "register":
            yield Row(
                f"register, {name}", "req/s", figure["value"], baseline, base_name or "", note=note
            )
        elif phase == "execution":
            scale = count == 3
            yield Row(
                f"burst {profile.pg_burst:,}, {name}",
                "attempts/s",
                figure["value"],
                baseline,
                base_name or "",
                f">={SCALE_TARGET}x 1 node" if scale else "",
                figure["value"] >= SCALE_TARGET * baseline if scale and baseline else None,
                note,
            )
            wrong = figure["twice"] + figure["never"]
            yield Row(f"burst, {name}: twice or never", "tasks", wrong, None, "", "0", wrong == 0)
        else:
            complete = not figure["missing"]
            for q in ("p50", "p99"):
                limited = engine == "pg" and q == "p99"
                yield Row(
                    f"lateness 1,000/s {q}, {name}",
                    "ms",
                    figure[q],
                    target=f"<={LATENESS_TARGET_MS}" if limited else "",
                    passed=complete and figure[q] <= LATENESS_TARGET_MS if limited else None,
                    note=note if q == "p99" else "",
                )


# --- main ---------------------------------------------------------------------------------

PHASES = ("register", "growth", "execution", "burst", "lateness", "scale")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Measure tasks-server against same-run baselines."
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    sizes.add_argument("--tiny", action="store_true", help="smallest sizes: checks it runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="SQLite beside 1, 2 and 3 nodes on one PostgreSQL (SPEC §14), not the §8 phases",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="with --postgres: an existing server (the bench creates and drops databases"
        " on it) instead of one started in a temp folder",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated phases to run (default: all; {','.join(PHASES)}, or with"
        f" --postgres {','.join(POSTGRES_PHASES)})",
    )
    return parser


def run_phases(
    profile: Profile, phases: Sequence[str], procs: Processes, work: Path, report: Report
) -> None:
    """The SPEC §8 and §14 phases on one SQLite node."""
    rate: float | None = None
    if "register" in phases:
        bench_register(profile, procs, work, report)
    if "growth" in phases:
        bench_register_growth(profile, procs, work, report)
    if "execution" in phases:
        rate = bench_execution(profile, procs, work, report)
    if "burst" in phases:
        bench_burst(profile, procs, work, report)
    if "lateness" in phases:
        bench_lateness(profile, procs, work, report, rate)
    if "scale" in phases:
        bench_scale(profile, procs, work, report)


def run(
    profile: Profile,
    phases: Sequence[str],
    json_path: Path | None,
    postgres: bool = False,
    database_url: str | None = None,
) -> Report:
    report = Report()
    started = time.perf_counter()
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        work = Path(tmp)
        if postgres:
            bench_postgres(profile, phases, procs, work, report, database_url)
        else:
            run_phases(profile, phases, procs, work, report)
    wall = time.perf_counter() - started
    print_table(report)
    print(f"\n{profile.name} run, {wall:.1f} s, {os.cpu_count()} CPUs shared by every process")
    if json_path is not None:
        document = {
            "profile": asdict(profile),
            "wall_s": wall,
            "machine": _machine(),
            "rows": [row.as_json() for row in report.rows],
            "details": report.details,
        }
        json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return report


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libcurl": pycurl.version,
        "load_average": os.getloadavg(),
    }


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the cleanup of every process and temp dir


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_target":
        target_main()
        return 0
    if argv and argv[0] == "_bare":
        bare_main(int(argv[1]))
        return 0
    if argv and argv[0] == "_loadgen":
        loadgen_main()
        return 0
    args = _parser().parse_args(argv)
    known = POSTGRES_PHASES if args.postgres else PHASES
    phases = [phase.strip() for phase in (args.only or ",".join(known)).split(",") if phase.strip()]
    unknown = set(phases) - set(known)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for name in _PROXY_VARIABLES:  # loopback only: neither curl nor urllib may use a proxy
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        profile = QUICK if args.quick else TINY if args.tiny else FULL
        run(profile, phases, args.json, args.postgres, args.database_url)
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
