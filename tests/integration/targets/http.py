"""``RecordingServer``: an HTTP target that records every request it receives.

One server speaks HTTP/1.0, 1.1 and 0.9-style answers, HTTP/2 (ALPN ``h2`` over TLS, or the
cleartext prior-knowledge preface), reads a leading PROXY-protocol v1 line, and can require
client certificates (a TLS context with ``CERT_REQUIRED``). Routes (anything else: 200 "ok"):

    /status/<code>             that status
    /redirect?to=<url>[&status=302]
    /hops/<n>                  n redirects in a row (to /hops/<n-1>, ... /hops/0 answers 200)
    /sts?to=<url>              302 to <url> with Strict-Transport-Security (HSTS)
    /digest                    RFC 7616 digest auth (MD5, qop=auth) against ``users``
    /bytes/<n>                 n bytes of body
    /http09                    a body without status line or headers, then close
"""

from __future__ import annotations

import asyncio
import hashlib
import http
import re
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events

from . import StreamServer

H2_PREFACE = b"PRI * HTTP/2.0\r\n"


@dataclass
class Request:
    method: str
    target: str
    version: str  # "HTTP/1.1", "HTTP/2", ...
    headers: list[tuple[str, str]]
    body: bytes
    server_port: int
    peer: tuple[Any, ...]
    proxy_line: str | None = None  # the PROXY protocol v1 line that opened the connection
    tls: dict[str, Any] | None = None  # version, alpn, session_reused, client_cert subject

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass
class Response:
    status: int = 200
    body: bytes = b"ok"
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None  # sent as is, then the connection closes (HTTP/0.9)


class Digest:
    """Server side of RFC 7616 digest auth (MD5, qop=auth), for targets and proxies."""

    def __init__(self, users: dict[str, str], realm: str = "tasks") -> None:
        self.users = users
        self.realm = realm
        self.nonces: set[str] = set()

    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self.nonces.add(nonce)
        return f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", algorithm=MD5'

    def check(self, method: str, authorization: str | None) -> str | None:
        """The user name when ``authorization`` is a valid digest response, else None."""
        if not authorization or not authorization.startswith("Digest "):
            return None
        pattern = r'(\w+)=(?:"([^"]*)"|([^,\s]*))'
        params = {k: a or b for k, a, b in re.findall(pattern, authorization[7:])}
        user = params.get("username", "")
        if params.get("nonce") not in self.nonces or user not in self.users:
            return None

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{user}:{self.realm}:{self.users[user]}")
        ha2 = md5(f"{method}:{params.get('uri', '')}")
        expected = md5(
            f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}"
            f":{params.get('qop', '')}:{ha2}"
        )
        return user if secrets.compare_digest(expected, params.get("response", "")) else None


Handler = Callable[[Request], Response | None]


class RecordingServer(StreamServer):
    """Records each request in ``requests`` (before answering), then answers it."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        hosts: tuple[str, ...] = ("127.0.0.1",),
        handler: Handler | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.ssl_context = ssl_context
        self.hosts = list(hosts)
        self.handler = handler  # tried before the built-in routes; None falls through
        self.digest = Digest(users or {"alice": "wonderland"})
        self.requests: list[Request] = []
        self.connections = 0

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}{path}"

    async def start(self) -> RecordingServer:
        await self.listen(self.hosts, self.ssl_context)
        return self

    def take(self) -> list[Request]:
        """The requests recorded so far, forgetting them."""
        taken, self.requests[:] = list(self.requests), []
        return taken

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        info: dict[str, Any] = {"peer": writer.get_extra_info("peername")}
        tls = writer.get_extra_info("ssl_object")
        if tls is not None:
            cert = tls.getpeercert()
            info["tls"] = {
                "version": tls.version(),
                "alpn": tls.selected_alpn_protocol(),
                "session_reused": tls.session_reused,
                # The client certificate's first subjectAltName (trustme sets no CN).
                "client_cert": cert["subjectAltName"][0][1] if cert else None,
            }
            if tls.selected_alpn_protocol() == "h2":
                await self._serve_h2(reader, writer, b"", info)
                return
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"PROXY "):
                info["proxy_line"] = line.decode().rstrip("\r\n")
                continue
            if line == H2_PREFACE:
                await self._serve_h2(reader, writer, line, info)
                return
            if not await self._serve_http1(line, reader, writer, info):
                return

    def _respond(self, request: Request) -> Response:
        self.requests.append(request)
        if self.handler is not None and (response := self.handler(request)) is not None:
            return response
        return self.route(request)

    def route(self, request: Request) -> Response:
        path, query = request.path, request.query
        if path.startswith("/status/"):
            return Response(int(path.removeprefix("/status/")))
        if path == "/redirect":
            status = int(query.get("status", ["302"])[0])
            return Response(status, b"", [("Location", query["to"][0])])
        if path.startswith("/hops/"):
            n = int(path.removeprefix("/hops/"))
            return Response(302, b"", [("Location", f"/hops/{n - 1}")]) if n else Response()
        if path == "/sts":
            sts = ("Strict-Transport-Security", "max-age=3600")
            return Response(302, b"", [sts, ("Location", query["to"][0])])
        if path == "/digest":
            if self.digest.check(request.method, request.header("authorization")):
                return Response(200, b"digest ok")
            return Response(401, b"", [("WWW-Authenticate", self.digest.challenge())])
        if path.startswith("/bytes/"):
            return Response(200, b"x" * int(path.removeprefix("/bytes/")))
        if path == "/http09":
            return Response(raw=b"<html>an HTTP/0.9 answer</html>\n")
        return Response()

    async def _serve_http1(
        self,
        line: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: dict[str, Any],
    ) -> bool:
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        lower = {k.lower(): v for k, v in headers}
        if lower.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if lower.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readline()).split(b";")[0], 16):
                body += await reader.readexactly(size)
                await reader.readline()
            await reader.readline()
        else:
            body = await reader.readexactly(int(lower.get("content-length", "0")))
        request = Request(
            method,
            target,
            version,
            headers,
            body,
            self.port,
            info["peer"],
            info.get("proxy_line"),
            info.get("tls"),
        )
        response = self._respond(request)
        if response.raw is not None:
            writer.write(response.raw)
            await writer.drain()
            return False
        reason = _reason(response.status)
        head = f"HTTP/1.1 {response.status} {reason}\r\nContent-Length: {len(response.body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in response.headers)
        writer.write(head.encode() + b"\r\n" + response.body)
        await writer.drain()
        return version == "HTTP/1.1" and lower.get("connection", "").lower() != "close"

    async def _serve_h2(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
        info: dict[str, Any],
    ) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        data = first
        while True:
            for event in conn.receive_data(data) if data else []:
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = (list(event.headers), bytearray())  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    pairs, body = streams.pop(event.stream_id)
                    pseudo = dict(p for p in pairs if p[0].startswith(":"))
                    request = Request(
                        pseudo[":method"],
                        pseudo[":path"],
                        "HTTP/2",
                        [p for p in pairs if not p[0].startswith(":")],
                        bytes(body),
                        self.port,
                        info["peer"],
                        info.get("proxy_line"),
                        info.get("tls"),
                    )
                    response = self._respond(request)
                    conn.send_headers(
                        event.stream_id,
                        [
                            (":status", str(response.status)),
                            ("content-length", str(len(response.body))),
                            *((k.lower(), v) for k, v in response.headers),
                        ],
                    )
                    conn.send_data(event.stream_id, response.body, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            writer.write(conn.data_to_send())
            await writer.drain()
            data = await reader.read(65536)
            if not data:
                return


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
