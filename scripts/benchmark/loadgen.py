"""The load generator: raw asyncio protocols on uvloop, in its own process
(``python -m scripts.benchmark.loadgen``), closed loop: each keep-alive connection sends its
next request as soon as the previous answer is in. It reads its spec as JSON on stdin and
prints its figures as JSON.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, cast

from scripts.benchmark.processes import CONTENT_LENGTH, HOST, Processes, helper
from scripts.benchmark.report import percentile


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
        match = CONTENT_LENGTH.search(self.buffer, 0, end)
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


def main() -> None:
    """Read a spec from stdin, load its ports with its requests, print the figures as JSON."""
    import uvloop

    spec = json.load(sys.stdin)
    requests = [request.encode("latin-1") for request in spec["requests"]]
    ports = spec["ports"]

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        load = _LoadRun(len(requests), spec["warmup_s"], spec["duration_s"])
        for request, port in zip(requests, ports, strict=True):
            await loop.create_connection(functools.partial(_LoadClient, load, request), HOST, port)
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
    proc = procs.start(helper("loadgen"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(json.dumps(spec).encode(), timeout=warmup_s + duration_s + 60)
    procs.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError("the load generator failed")
    result: dict[str, Any] = json.loads(out)
    return result


def not_answered(figures: dict[str, Any], status: int) -> int:
    """Requests of a `load` run answered with another status than `status`."""
    return sum(n for answered, n in figures["statuses"].items() if answered != str(status))


def post_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


if __name__ == "__main__":
    main()
