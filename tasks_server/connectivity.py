"""The optional connectivity gate: due tasks wait until a host name resolves."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

log = logging.getLogger(__name__)


class ConnectivityGate:
    """Open when `hostname` is empty or resolved within the last `interval_ms`."""

    def __init__(self, hostname: str, interval_ms: int) -> None:
        self.hostname = hostname
        self.interval_s = interval_ms / 1000
        self._open_until = 0.0
        self._lock = asyncio.Lock()

    async def wait_open(self) -> None:
        if not self.hostname or time.monotonic() < self._open_until:
            return
        async with self._lock:  # one look-up at a time, however many tasks wait
            while time.monotonic() >= self._open_until:
                if await self._resolves():
                    self._open_until = time.monotonic() + self.interval_s
                    return
                log.warning(
                    "connectivity check failed: %s does not resolve; due tasks wait",
                    self.hostname,
                    extra={"action": "connectivity_closed"},
                )
                await asyncio.sleep(self.interval_s)

    async def _resolves(self) -> bool:
        try:
            await asyncio.get_running_loop().getaddrinfo(
                self.hostname, None, type=socket.SOCK_STREAM
            )
        except OSError:
            return False
        return True
