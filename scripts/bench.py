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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

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
    if unit in ("req/s", "attempts/s"):
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
    return _line(_cells(row))


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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

    def dump(self) -> dict[str, float]:
        """Arrival time (epoch ms) of each queue id seen since the last dump (first arrival)."""
        _, body = http("GET", f"{self.url}/_dump")
        arrivals: dict[str, float] = {}
        for line in body.decode().splitlines():
            queue_id, at = line.split()
            arrivals.setdefault(queue_id, float(at))
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

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        load = _LoadRun(len(requests), spec["warmup_s"], spec["duration_s"])
        for request in requests:
            await loop.create_connection(lambda r=request: _LoadClient(load, r), HOST, spec["port"])
        await asyncio.wait_for(load.finished, spec["warmup_s"] + spec["duration_s"] + 30)
        latencies = [seconds * 1000 for seconds in load.latencies]
        return {
            "requests": len(latencies),
            "rps": len(latencies) / spec["duration_s"],
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=float("nan")),
            "statuses": load.statuses,
        }

    print(json.dumps(uvloop.run(run())), flush=True)


def load(
    procs: Processes, port: int, requests: list[bytes], warmup_s: float, duration_s: float
) -> dict[str, Any]:
    """Run the load generator in its own process against `port`."""
    spec = {
        "port": port,
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


def start_server(procs: Processes, workdir: Path, db: Path, name: str) -> Server:
    """`tasks-server serve` on a free port, throttle off, no per-owner limit in the way."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": HOST,
        "PORT": str(port),
        "PATH_SQLITE": str(db),
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


def new_database(path: Path, owner_names: Sequence[str]) -> list[Owner]:
    """A migrated database with these owners, through the store layer."""
    from ulid import ULID

    from tasks_server.api.auth import digest, new_key
    from tasks_server.store import owners as owner_store
    from tasks_server.store.db import Database
    from tasks_server.timeutil import now_ms

    made = [Owner(str(ULID()), name, new_key()) for name in owner_names]

    async def create() -> None:
        db = Database(path)
        await db.open()
        try:
            for owner in made:
                await owner_store.create_owner(
                    db,
                    owner_id=owner.id,
                    name=owner.name,
                    key_digest=digest(owner.key),
                    created_at=now_ms(),
                )
        finally:
            await db.close()

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


def seed_tasks(db: Path, owner: Owner, dues: Sequence[int], url: str) -> list[str]:
    """Insert RUNNING GET tasks due at `dues` in one transaction; their ids, in order.

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
    rows = (
        (queue_id, owner.id, created, due, codec.seal(plain, queue_id, "request"))
        for queue_id, due in zip(ids, dues, strict=True)
    )
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(SEED_QUEUE, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ids


def count_running(db: Path) -> int:
    """RUNNING tasks, counted on the scheduler's partial index (cheap: polled while measuring)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        (count,) = conn.execute("SELECT count(*) FROM queues WHERE state = 'RUNNING'").fetchone()
    finally:
        conn.close()
    return int(count)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- 1. registration ----------------------------------------------------------------------


def bench_register(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print("register: generator ceiling, bare route, tasks-server", flush=True)
    target = start_target(procs)
    body = orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "POST", "data": {"n": 1}},
            "config": {"executionDelay": 86_400_000, "retry": 2, "retryInterval": 1000},
            "metadata": {"bench": "register"},
        }
    )
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


def bench_register_growth(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    """Registering into an owner holding 50,000 tasks against an empty owner (O(1) limit)."""
    print(f"register growth: an empty owner, then one holding {GROWN_OWNER:,}", flush=True)
    target = start_target(procs)
    body = orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "GET"},
            "config": {"executionDelay": 86_400_000},
        }
    )
    rates = {}
    for label, waiting in (("empty", 0), ("grown", GROWN_OWNER)):
        db = work / f"growth-{label}.db"
        (owner,) = new_database(db, [f"growth-{label}"])
        if waiting:
            seed_tasks(db, owner, [now_ms() + 86_400_000] * waiting, f"{target.url}/never")
        server = start_server(procs, work, db, f"growth-{label}")
        request = post_request(server.port, "/v1/queues/register", body, owner.headers)
        measured = load(
            procs,
            server.port,
            [request] * profile.connections,
            profile.warmup_s,
            profile.duration_s,
        )
        procs.stop(server.proc)
        rates[label] = measured["rps"]
    procs.stop(target.proc)
    report.details["register_growth"] = rates
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
    done_at = _wait_done(db, timeout=300)
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
    done_at = _wait_done(db, timeout=300)
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


def _wait_done(db: Path, timeout: float) -> float:
    """Poll until no task is RUNNING; the wall-clock time (s) when that was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_running(db) == 0:
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


# --- main ---------------------------------------------------------------------------------

PHASES = ("register", "growth", "execution", "burst", "lateness", "scale")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Measure tasks-server against same-run baselines."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases to run (default: {','.join(PHASES)})",
    )
    return parser


def run(profile: Profile, phases: Sequence[str], json_path: Path | None) -> Report:
    report = Report()
    started = time.perf_counter()
    rate: float | None = None
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        work = Path(tmp)
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
    phases = [phase.strip() for phase in args.only.split(",") if phase.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for name in _PROXY_VARIABLES:  # loopback only: neither curl nor urllib may use a proxy
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run(QUICK if args.quick else FULL, phases, args.json)
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
