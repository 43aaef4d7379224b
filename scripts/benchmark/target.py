"""The raw target: a minimal HTTP/1.1 keep-alive responder on uvloop protocols, in its own
process (``python -m scripts.benchmark.target``). It answers ``200 ok`` and records when
each ``X-Tasks-Queue-Id`` arrived (epoch ms, µs resolution); ``GET /_dump`` hands the records
over and forgets them, ``GET /_count`` counts them.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from typing import cast

from scripts.benchmark.processes import CONTENT_LENGTH, HOST, Listener, Processes, helper, http

_QUEUE_ID = re.compile(rb"\r\nx-tasks-queue-id:[ \t]*([0-9A-Z]{26})", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
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
            match = CONTENT_LENGTH.search(head)
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


def main(port: int = 0) -> None:
    """Serve on `port` (0: a free one), print it, run until SIGTERM."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        state = _TargetState()
        server = await loop.create_server(lambda: _TargetProtocol(state), HOST, port, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(serve())


class Target(Listener):
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


def start_target(procs: Processes, port: int = 0) -> Target:
    """The target on `port` (0: a free one): a destination that refused until now, say."""
    proc = procs.start(helper("target", str(port)), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise RuntimeError("the raw target did not start")
    return Target(proc, int(line.split()[1]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
