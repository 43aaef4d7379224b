"""Per-client request throttle with the IETF RateLimit-* headers.

Fixed windows aligned on the clock: counts live only for the current window, so memory is
bounded by the clients seen in one window. Counts are per process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_server.api.errors import ACTIONS


class Throttle:
    """ASGI middleware limiting each client to `limit` requests per `window_ms` on /v1 routes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        window_ms: int,
        on_throttled: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.limit = limit
        self.window_ms = window_ms
        self.on_throttled = on_throttled
        self.clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}
        self._policy = f"{limit};w={math.ceil(window_ms / 1000)}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        now_ms = self.clock() * 1000
        window = int(now_ms // self.window_ms)
        if window != self._window:
            self._window = window
            self._counts.clear()
        client = scope["client"][0] if scope.get("client") else ""
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        headers = [
            (b"ratelimit-policy", self._policy),
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(max(0, self.limit - count)).encode()),
        ]
        if count > self.limit:
            self.on_throttled()
            reset = str(max(1, math.ceil(((window + 1) * self.window_ms - now_ms) / 1000)))
            headers += [(b"ratelimit-reset", reset.encode()), (b"retry-after", reset.encode())]
            await _reject(send, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _reject(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    body = orjson.dumps({"action": ACTIONS[429], "message": "Too many requests"})
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
