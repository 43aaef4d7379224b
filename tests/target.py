"""A recording HTTP target on a free 127.0.0.1 port, in its own thread.

It records every request with its arrival time and answers from a per-path script of
(status, delay_ms, body) steps, then 200 "ok"; it counts the requests of each path it is
answering at once. A delayed answer notices a client that hangs
up, so tests can see an attempt being aborted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from tests.integration.server import free_port


@dataclass(frozen=True)
class Hit:
    at_ms: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def queue_id(self) -> str:
        return self.headers.get("x-tasks-queue-id", "")


@dataclass(frozen=True)
class Step:
    status: int = 200
    delay_ms: int = 0
    body: bytes = b"ok"
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Target:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        """On a free port of 127.0.0.1, or where a stored task was told to send (`port`)."""
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.hits: list[Hit] = []
        self.disconnects: list[str] = []
        self.active: Counter[str] = Counter()  # requests of each path being answered now
        self.peak: Counter[str] = Counter()  # the most ever answered at once
        self._scripts: dict[str, list[Step]] = defaultdict(list)
        self._cond = threading.Condition()
        config = uvicorn.Config(
            self._app,
            host=host,
            port=self.port,
            log_config=None,
            lifespan="off",
            loop="asyncio",
            timeout_graceful_shutdown=1,
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def script(self, path: str, *steps: Step) -> None:
        with self._cond:
            self._scripts[path].extend(steps)

    def hits_for(self, path: str) -> list[Hit]:
        with self._cond:
            return [hit for hit in self.hits if hit.path == path]

    def wait(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("target did not see what the test waited for")

    async def wait_hits(self, path: str, count: int, timeout: float = 10) -> list[Hit]:
        await asyncio.to_thread(self.wait, lambda: len(self._path_hits(path)) >= count, timeout)
        return self.hits_for(path)

    async def wait_disconnect(self, path: str, timeout: float = 10) -> None:
        await asyncio.to_thread(self.wait, lambda: path in self.disconnects, timeout)

    def _path_hits(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    async def _app(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        with self._cond:
            self.hits.append(Hit(time.time_ns() // 1_000_000, scope["method"], path, headers, body))
            script = self._scripts.get(path)
            step = script.pop(0) if script else Step()
            self.active[path] += 1
            self.peak[path] = max(self.peak[path], self.active[path])
            self._cond.notify_all()
        try:
            await self._answer(path, step, receive, send)
        finally:
            with self._cond:
                self.active[path] -= 1
                self._cond.notify_all()

    async def _answer(self, path, step, receive, send):  # type: ignore[no-untyped-def]
        if step.delay_ms:
            try:
                message = await asyncio.wait_for(receive(), step.delay_ms / 1000)
            except TimeoutError:
                pass
            else:
                if message["type"] == "http.disconnect":
                    with self._cond:
                        self.disconnects.append(path)
                        self._cond.notify_all()
                    return
        await send(
            {
                "type": "http.response.start",
                "status": step.status,
                "headers": [(b"content-length", str(len(step.body)).encode()), *step.headers],
            }
        )
        await send({"type": "http.response.body", "body": step.body})

    def __enter__(self) -> Target:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("target did not start")
            time.sleep(0.01)  # waiting for the thread's startup flag
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
