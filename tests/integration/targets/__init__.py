"""Local servers for integration tests, each on a free port of 127.0.0.1 (or ::1).

They run on an asyncio loop of their own in a daemon thread (``ServerThread``), so one set of
servers can be a module- or session-scoped fixture shared by tests whatever loop each test
runs on. Servers record what they receive before they answer, so a test that has its
response can read the record without waiting.

- ``http.RecordingServer``: HTTP/1.x and HTTP/2 (TLS ALPN or prior knowledge), optional TLS
  and client certificates, PROXY-protocol lines, digest auth, redirects; records requests.
- ``proxy.ForwardProxy``: an HTTP(S) forward proxy (absolute-form forwarding and CONNECT)
  with optional basic or digest proxy auth; records what it is asked.
- ``dns``: a DNS answer builder and a DNS-over-HTTPS route for ``RecordingServer``.
- ``tls.Pki``: a private CA (trustme) with server and client certificates in PEM, DER, P12.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
WAIT = 10.0  # seconds: bound for any one cross-thread call


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """An asyncio loop running in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


class StreamServer:
    """Base: ``asyncio.start_server`` on loopback, with every connection handler tracked so
    ``stop`` ends them all."""

    def __init__(self) -> None:
        self.port = 0
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, hosts: list[str], ssl: Any = None) -> None:
        """Listen on each host, all on one port (so a name resolving to both families works)."""
        for _ in range(20):
            port = free_port(hosts[0])
            try:
                for host in hosts:
                    server = await asyncio.start_server(self._accept, host, port, ssl=ssl)
                    self._servers.append(server)
            except OSError:  # the port was taken on another family meanwhile: try another
                await self._close_servers()
                continue
            self.port = port
            return
        raise RuntimeError(f"no common free port on {hosts}")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        # Hang up rather than cancel: handlers then end on their own EOF path.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=WAIT)
        await self._close_servers()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF, then half-close the other side."""
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()
