"""``ForwardProxy``: a small HTTP(S) forward proxy that records what it is asked.

Plain requests arrive in absolute form (``GET http://host:port/path HTTP/1.1``) and are
forwarded with ``Connection: close``; ``CONNECT host:port`` opens a tunnel. Upstreams must be
loopback: names are looked up in ``hosts`` (default: everything goes to 127.0.0.1), so a
test never reaches the network. Optional proxy auth: ``("basic" | "digest", user, password)``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from . import StreamServer, pipe
from .http import Digest


@dataclass
class ProxyRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class ForwardProxy(StreamServer):
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        auth: tuple[Literal["basic", "digest"], str, str] | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.ssl_context = ssl_context
        self.auth = auth
        self.hosts = hosts or {}
        self.digest = Digest({auth[1]: auth[2]}, realm="proxy") if auth else None
        self.requests: list[ProxyRequest] = []  # every request, refused ones included

    async def start(self) -> ForwardProxy:
        await self.listen(["127.0.0.1"], self.ssl_context)
        return self

    def take(self) -> list[ProxyRequest]:
        taken, self.requests[:] = list(self.requests), []
        return taken

    def _authorized(self, request: ProxyRequest) -> bool:
        if self.auth is None:
            return True
        kind, user, password = self.auth
        given = request.header("proxy-authorization")
        if kind == "basic":
            return given == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        assert self.digest is not None
        return self.digest.check(request.method, given) == user

    def _challenge(self) -> str:
        if self.digest is not None:
            return self.digest.challenge()
        return 'Basic realm="proxy"'

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.hosts.get(host.strip("[]"), "127.0.0.1")
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"the test proxy only reaches loopback, not {address}")
        return await asyncio.open_connection(address, port)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            headers: list[tuple[str, str]] = []
            while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = raw.decode("latin-1").partition(":")
                headers.append((name, value.strip()))
            request = ProxyRequest(method, target, version, headers)
            self.requests.append(request)
            length = int(request.header("content-length") or 0)
            body = await reader.readexactly(length)
            if not self._authorized(request):
                challenge = self._challenge()
                writer.write(
                    f"{version} 407 Proxy Authentication Required\r\n"
                    f"Proxy-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
                if version == "HTTP/1.0":
                    return
                continue
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await self._open(host, int(port))
                writer.write(f"{version} 200 Connection established\r\n\r\n".encode())
                await writer.drain()
            else:
                url = urlsplit(target)
                up_reader, up_writer = await self._open(url.hostname or "", url.port or 80)
                path = url.path + (f"?{url.query}" if url.query else "")
                skip = ("proxy-authorization", "proxy-connection", "connection")
                forwarded = [(k, v) for k, v in headers if k.lower() not in skip]
                head = f"{method} {path} HTTP/1.1\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in forwarded) + "Connection: close\r\n"
                up_writer.write(head.encode() + b"\r\n" + body)
                await up_writer.drain()
            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            finally:
                up_writer.close()
            return
