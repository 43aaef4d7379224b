"""CurlTransport against a real HTTP/1.1 target on 127.0.0.1 (a free port, same event loop).

The target is a raw ``asyncio.start_server`` so tests can count connections and observe
disconnects exactly; every wait has a timeout and nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pycurl
import pytest

from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.errors import (
    AttemptError,
    AttemptTimeout,
    ResponseTooLarge,
    TransportError,
    error_from_curl,
)
from tasks_server.executor.multi import START_EVERY
from tasks_server.executor.transfer import Transfer
from tests.target import Target as ThreadedTarget

WAIT = 10  # seconds: generous bound for any single wait in these tests
HUGE_BODY = 1 << 30  # what the /huge route announces (and would stream forever)
CAP = 100_000
POOL = "01OWNERA"  # the owner every send here belongs to, unless a test names another


class Target:
    """A tiny keep-alive HTTP/1.1 server with routes shaped for the tests."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.slow_started: asyncio.Queue[None] = asyncio.Queue()
        self.slow_closed: asyncio.Queue[None] = asyncio.Queue()
        self.huge_sent = 0
        self.huge_closed = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Hang up rather than cancel: handlers then end on their own EOF path.
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*self._handlers), WAIT)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection should end."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        headers = {name.lower(): value for name, value in headers.items()}
        body = await reader.readexactly(int(headers.get("content-length", "0")))

        if path == "/echo":
            echo = {"method": method, "headers": headers, "body": body.decode()}
            await _respond(writer, 200, json.dumps(echo).encode())
        elif path.startswith("/status/"):
            await _respond(writer, int(path.removeprefix("/status/")), path.encode())
        elif path == "/redirect":
            await _respond(writer, 302, b"", location="/status/200")
        elif path == "/slow":  # never answers; reports when the client goes away
            self.slow_started.put_nowait(None)
            await reader.read(1)
            self.slow_closed.put_nowait(None)
            return False
        elif path == "/huge":  # announces 1 GiB and streams until the client hangs up
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE_BODY)
            chunk = b"x" * 65536
            try:
                while self.huge_sent < HUGE_BODY:
                    writer.write(chunk)
                    await writer.drain()
                    self.huge_sent += len(chunk)
            finally:
                self.huge_closed.set()
            return False
        else:
            await _respond(writer, 404, b"")
        return True


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, location: str | None = None
) -> None:
    head = f"HTTP/1.1 {status} Test\r\nContent-Length: {len(body)}\r\n"
    if location:
        head += f"Location: {location}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = Target()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[CurlTransport]:
    curl = CurlTransport()
    yield curl
    await curl.aclose()


def _get(url: str, **extra: Any) -> list[tuple[int, Any]]:
    return [(pycurl.URL, url), *((getattr(pycurl, k), v) for k, v in extra.items())]


async def test_get_returns_status_body_and_timing(target: Target, transport: CurlTransport):
    response = await transport.send(_get(target.url("/status/200")), max_body_bytes=CAP, pool=POOL)
    assert response.status_code == 200
    assert response.body == b"/status/200"
    assert response.effective_url == target.url("/status/200")
    assert response.total_time_ms > 0


async def test_post_body_and_headers_arrive(target: Target, transport: CurlTransport):
    options = _get(
        target.url("/echo"),
        CUSTOMREQUEST="POST",
        POSTFIELDS=b'{"k": "v"}',
        HTTPHEADER=["Content-Type: application/json", "X-Tasks-Queue-Id: 01ABC"],
    )
    response = await transport.send(options, max_body_bytes=CAP, pool=POOL)
    echo = json.loads(response.body)
    assert echo["method"] == "POST"
    assert echo["body"] == '{"k": "v"}'
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-tasks-queue-id"] == "01ABC"


@pytest.mark.parametrize("status", [201, 404, 503])
async def test_http_status_codes_are_responses_not_errors(
    target: Target, transport: CurlTransport, status: int
):
    response = await transport.send(
        _get(target.url(f"/status/{status}")), max_body_bytes=CAP, pool=POOL
    )
    assert response.status_code == status


async def test_redirect_followed_reports_effective_url(target: Target, transport: CurlTransport):
    options = _get(target.url("/redirect"), FOLLOWLOCATION=1)
    response = await transport.send(options, max_body_bytes=CAP, pool=POOL)
    assert (response.status_code, response.effective_url) == (200, target.url("/status/200"))


async def test_timeout_raises_attempt_timeout(target: Target, transport: CurlTransport):
    with pytest.raises(AttemptTimeout) as caught:
        await transport.send(
            _get(target.url("/slow"), TIMEOUT_MS=1000), max_body_bytes=CAP, pool=POOL
        )
    assert caught.value.status_code == 408
    assert "timed out" in caught.value.message
    await asyncio.wait_for(target.slow_closed.get(), WAIT)


async def test_connection_refused_raises_transport_error_with_libcurl_text(
    transport: CurlTransport,
):
    port = _unused_port()
    with pytest.raises(TransportError) as caught:
        await transport.send(_get(f"http://127.0.0.1:{port}/x"), max_body_bytes=CAP, pool=POOL)
    assert caught.value.status_code == 500
    # libcurl's own text; its wording moved between versions ("port N: ..." / ":N after ...").
    assert caught.value.message.startswith("Failed to connect to 127.0.0.1")
    assert str(port) in caught.value.message


async def test_oversized_body_is_cut_off_while_downloading(
    target: Target, transport: CurlTransport
):
    with pytest.raises(ResponseTooLarge) as caught:
        await asyncio.wait_for(
            transport.send(_get(target.url("/huge")), max_body_bytes=CAP, pool=POOL), WAIT
        )
    assert caught.value.status_code == 422
    await asyncio.wait_for(target.huge_closed.wait(), WAIT)
    # Only socket buffers' worth went out before the client hung up, not the 1 GiB body.
    assert target.huge_sent < HUGE_BODY // 32


def test_write_callback_never_buffers_past_the_cap():
    loop = asyncio.new_event_loop()
    try:
        transfer = Transfer(loop.create_future(), max_body_bytes=10)
        assert transfer.write(b"12345") is None
        assert transfer.write(b"67890") is None
        assert transfer.write(b"1") == 0  # abort: libcurl sees a short write
        assert transfer.too_large
        assert b"".join(transfer.chunks) == b"1234567890"
    finally:
        loop.close()


async def test_cancel_aborts_promptly_and_target_sees_disconnect(
    target: Target, transport: CurlTransport
):
    sending = asyncio.create_task(
        transport.send(_get(target.url("/slow")), max_body_bytes=CAP, pool=POOL)
    )
    await asyncio.wait_for(target.slow_started.get(), WAIT)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert transport.in_flight == 0
    await asyncio.wait_for(target.slow_closed.get(), WAIT)
    # The transport stays usable after a cancellation.
    response = await transport.send(_get(target.url("/status/200")), max_body_bytes=CAP, pool=POOL)
    assert response.status_code == 200


async def test_200_concurrent_sends_complete(target: Target, transport: CurlTransport):
    async def one(i: int) -> bytes:
        options = _get(target.url("/echo"), POSTFIELDS=f"body-{i}".encode())
        return (await transport.send(options, max_body_bytes=CAP, pool=POOL)).body

    bodies = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), WAIT)
    assert [json.loads(body)["body"] for body in bodies] == [f"body-{i}" for i in range(200)]


async def test_a_burst_added_in_one_loop_turn_is_on_the_wire_before_the_turn_ends(
    transport: CurlTransport,
) -> None:
    """libcurl starts added handles at its timer tick, which runs after the loop turn: a
    burst of sends would wait for its last handle before its first request left. Every
    START_EVERY added handles libcurl runs at once and what connected is sent."""
    loop = asyncio.get_running_loop()
    with ThreadedTarget() as target:  # its own thread: it answers while this loop is held
        sends = [
            asyncio.create_task(
                transport.send(_get(f"{target.url}/burst"), max_body_bytes=CAP, pool=POOL)
            )
            for _ in range(2 * START_EVERY)
        ]
        seen: asyncio.Future[int] = loop.create_future()

        def hold_the_loop() -> None:
            """Right after the sends' first steps, before the loop polls or ticks libcurl:
            only requests already written can reach the target meanwhile."""
            try:
                target.wait(lambda: len(target.hits) >= START_EVERY, timeout=WAIT)
                seen.set_result(len(target.hits))
            except TimeoutError as exc:
                seen.set_exception(exc)

        loop.call_soon(hold_the_loop)
        try:
            held_hits = await seen
        finally:  # every send ends before the target stops, also when the wait failed
            answers = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), WAIT)
    assert held_hits >= START_EVERY
    assert [getattr(answer, "status_code", answer) for answer in answers] == [200] * len(sends)


async def test_sequential_requests_reuse_one_connection(target: Target, transport: CurlTransport):
    for _ in range(5):
        response = await transport.send(
            _get(target.url("/status/200")), max_body_bytes=CAP, pool=POOL
        )
        assert response.status_code == 200
    assert target.connections == 1


async def test_a_reused_handle_keeps_nothing_of_an_earlier_transfer(
    target: Target, transport: CurlTransport
):
    """A pooled handle sets only the options that changed when the next transfer has the same
    ones in the same order, and starts clean when they differ."""

    async def echo(**extra: Any) -> dict[str, Any]:
        options = _get(target.url("/echo"), **extra)
        response = await transport.send(options, max_body_bytes=CAP, pool=POOL)
        result: dict[str, Any] = json.loads(response.body)
        return result

    post = {"CUSTOMREQUEST": "POST", "USERPWD": "user:secret"}
    first = await echo(**post, POSTFIELDS=b"one", HTTPHEADER=["X-A: 1"])
    assert first["headers"]["authorization"].startswith("Basic ")
    assert (first["body"], first["headers"]["x-a"]) == ("one", "1")
    again = await echo(**post, POSTFIELDS=b"two", HTTPHEADER=["X-A: 2"])
    assert (again["method"], again["body"], again["headers"]["x-a"]) == ("POST", "two", "2")
    plain = await echo()
    assert plain["method"] == "GET" and plain["body"] == ""
    assert not {"authorization", "x-a"} & plain["headers"].keys()
    assert transport.idle_handles == {POOL: 1} and target.connections == 1
    # An idle handle's callbacks point at no transfer: it keeps no response alive.
    assert all(slot.transfer is None for slot in transport._handles._slots.values())


async def test_option_refused_by_libcurl_is_a_transport_error(
    target: Target, transport: CurlTransport
):
    with pytest.raises(TransportError):
        await transport.send(_get(target.url("/x"), HTTP_VERSION=99), max_body_bytes=CAP, pool=POOL)
    with pytest.raises(TypeError):  # not an option at all: a bug upstream, not an outcome
        await transport.send([(99999, 1)], max_body_bytes=CAP, pool=POOL)
    assert transport.in_flight == 0
    response = await transport.send(_get(target.url("/status/200")), max_body_bytes=CAP, pool=POOL)
    assert response.status_code == 200


async def test_aclose_aborts_transfers_in_flight(target: Target):
    transport = CurlTransport(max_idle=2, max_connects=8)
    tasks = [
        asyncio.create_task(
            transport.send(_get(target.url("/slow")), max_body_bytes=CAP, pool=POOL)
        )
        for _ in range(5)
    ]
    for _ in tasks:
        await asyncio.wait_for(target.slow_started.get(), WAIT)
    await transport.aclose()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    for _ in tasks:
        await asyncio.wait_for(target.slow_closed.get(), WAIT)
    await transport.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await transport.send(_get(target.url("/status/200")), max_body_bytes=CAP, pool=POOL)


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        (pycurl.E_OPERATION_TIMEDOUT, AttemptTimeout, 408),
        (pycurl.E_FILESIZE_EXCEEDED, ResponseTooLarge, 422),
        (pycurl.E_COULDNT_RESOLVE_HOST, TransportError, 500),
    ],
)
def test_error_mapping(code: int, kind: type[AttemptError], status: int):
    error = error_from_curl(code, "libcurl says")
    assert type(error) is kind
    assert (error.status_code, error.message, str(error)) == (
        status,
        "libcurl says",
        "libcurl says",
    )


def test_same_mechanics_on_uvloop():
    """uvicorn serves on uvloop when installed: the reader/writer/timer mapping must hold there."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        target = Target()
        await target.start()
        transport = CurlTransport()
        try:
            sending = asyncio.create_task(
                transport.send(_get(target.url("/slow")), max_body_bytes=CAP, pool=POOL)
            )
            await asyncio.wait_for(target.slow_started.get(), WAIT)
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            await asyncio.wait_for(target.slow_closed.get(), WAIT)
            urls = [target.url(f"/status/{200 + i % 3}") for i in range(100)]
            responses = await asyncio.wait_for(
                asyncio.gather(
                    *(transport.send(_get(u), max_body_bytes=CAP, pool=POOL) for u in urls)
                ),
                WAIT,
            )
            assert [r.status_code for r in responses] == [200 + i % 3 for i in range(100)]
        finally:
            await transport.aclose()
            await target.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


class SmugglingTarget:
    """Keep-alive target that reads pipelined requests, as a real one would.

    ``/smuggled`` answers only once the client's next request has reached this connection,
    or a second connection has opened: a desynchronised connection then holds this answer
    ahead of the next request's, which is how one owner could poison another's response.
    """

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._second = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> SmugglingTarget:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        self.connections += 1
        if self.connections > 1:
            self._second.set()
        try:
            path = await self._read(reader)
            while path is not None:
                following = None
                if path == "/smuggled":
                    following = asyncio.ensure_future(self._read(reader))
                    second = asyncio.ensure_future(self._second.wait())
                    await asyncio.wait({following, second}, return_when=asyncio.FIRST_COMPLETED)
                    second.cancel()
                    await _respond(writer, 200, b"SLOW-RESPONSE-FOR-SMUGGLED-BY-A")
                else:
                    await _respond(writer, 200, f"ANSWER-FOR-{path}".encode())
                path = await (following or self._read(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> str | None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        except asyncio.IncompleteReadError:
            return None
        lengths = [line.split(":", 1)[1] for line in head if line.lower().startswith("content-l")]
        await reader.readexactly(int(lengths[0]) if lengths else 0)
        return head[0].split(" ")[1]


async def test_one_owner_cannot_poison_another_owners_connection(transport: CurlTransport):
    """SPEC §10.1: the smuggling scenario. Registration refuses the framing header (see the
    API tests); even a desynchronised connection stays with the owner that desynchronised it.
    """
    async with SmugglingTarget() as target:
        base = f"http://127.0.0.1:{target.port}"
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: target\r\n\r\n"
        options = _get(f"{base}/a", POSTFIELDS=smuggled, HTTPHEADER=["Content-Length: 0"])
        first = await transport.send(options, max_body_bytes=CAP, pool="01OWNERA")
        assert first.body == b"ANSWER-FOR-/a"
        second = await asyncio.wait_for(
            transport.send(_get(f"{base}/b"), max_body_bytes=CAP, pool="01OWNERB"), WAIT
        )
        assert second.body == b"ANSWER-FOR-/b"
        assert target.connections == 2


async def test_finished_handles_are_kept_up_to_max_idle_over_all_pools(target: Target):
    transport = CurlTransport(max_idle=3)
    url = target.url("/status/200")
    try:
        await asyncio.gather(
            *(transport.send(_get(url), max_body_bytes=CAP, pool="01A") for _ in range(5))
        )
        assert transport.idle_handles == {"01A": 3}
        await transport.send(_get(url), max_body_bytes=CAP, pool="01A")  # reuses one
        assert transport.idle_handles == {"01A": 3}
        await asyncio.gather(
            *(transport.send(_get(url), max_body_bytes=CAP, pool="01B") for _ in range(2))
        )
        # B's finished handles take the room of those A used the longest ago.
        assert transport.idle_handles == {"01A": 1, "01B": 2}
    finally:
        await transport.aclose()
    assert transport.idle_handles == {}


async def test_pools_idle_longest_are_closed_beyond_the_cap(target: Target):
    transport = CurlTransport(max_pools=2)
    try:
        for owner in ("01A", "01B", "01C", "01A"):
            await transport.send(_get(target.url("/status/200")), max_body_bytes=CAP, pool=owner)
    finally:
        await transport.aclose()
    # A's connection was closed with its pool when C's opened, so A's last send reconnected.
    assert target.connections == 4
