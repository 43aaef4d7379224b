"""The HTTP server protects itself (SPEC §10.7), tried with raw sockets against the real server."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from tasks_server.app import create_app
from tasks_server.cli import UVICORN_OPTIONS
from tasks_server.store import owners
from tests.conftest import MakeSettings
from tests.integration.server import ServerProcess, free_port

TIMEOUT_MS = 1000
MAX_CONNECTIONS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("limits")
    (workdir / "certs").mkdir()
    with ServerProcess(
        workdir,
        LOG=1,
        CIPHER_KEY="limits-test-key",
        CERTS_DIR=workdir / "certs",
        HTTP_HEADER_TIMEOUT_MS=TIMEOUT_MS,
        HTTP_BODY_TIMEOUT_MS=TIMEOUT_MS,
        MAX_CONNECTIONS=MAX_CONNECTIONS,
    ) as process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _send(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may close the connection before reading all of it."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _response(sock: socket.socket) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one response: status, headers and a Content-Length body."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buffer!r}"
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Read until the server closes the connection; fail if it is still open after `seconds`."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {seconds} s")
    return received


def _get(path: str, *headers: bytes) -> bytes:
    return b"".join([f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode(), *headers, b"\r\n"])


# An owner registration (no auth needed) whose body stops 92 bytes short of its length.
CUT_SHORT = (
    b"POST /v1/owners/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"name":'
)


def _registrations(server: ServerProcess) -> dict[str, float]:
    """tasks_http_requests_total of POST /v1/owners/register, by status."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "tasks_http_requests_total" and labels["route"] == (
                "/v1/owners/register"
            ):
                counts[labels["status"]] = sample.value
    return counts


def _until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling with a deadline


def _counted_once_more(server: ServerProcess, status: str, before: dict[str, float]) -> None:
    """The request is counted with `status`, logged at INFO, and nothing counts as a 500."""
    _until(
        lambda: _registrations(server).get(status, 0) == before.get(status, 0) + 1,
        f"no {status} counted: {_registrations(server)}",
    )
    _until(lambda: f"status={status}" in server.output(), "no log line")
    output = server.output()
    assert "unhandled" not in output and "Traceback" not in output, output
    logged = [line for line in output.splitlines() if f"status={status}" in line]
    assert logged[-1].split()[1] == "INFO", logged
    assert "500" not in _registrations(server)


def test_a_1_mib_header_block_is_refused(server: ServerProcess) -> None:
    with _connect(server) as sock:
        _send(sock, _get("/status", b"X-Big: " + b"a" * (1 << 20) + b"\r\n"))
        status, _, _ = _response(sock)
        assert status == 431


def test_a_header_block_just_over_16_kib_is_refused_and_under_it_served(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        _send(sock, _get("/status", b"X-Big: " + b"a" * 16400 + b"\r\n"))
        assert _response(sock)[0] == 431
    with _connect(server) as sock:
        _send(sock, _get("/status", b"X-Big: " + b"a" * 15000 + b"\r\n"))
        assert _response(sock)[0] == 200


def test_101_headers_are_refused_and_100_served(server: ServerProcess) -> None:
    many = [f"X-H{i}: v\r\n".encode() for i in range(100)]  # plus Host: 101
    with _connect(server) as sock:
        _send(sock, _get("/status", *many))
        assert _response(sock)[0] == 431
    with _connect(server) as sock:
        _send(sock, _get("/status", *many[:99]))
        assert _response(sock)[0] == 200


def test_a_slow_header_sender_is_cut_off(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        _send(sock, b"GET /status HTTP/1.1\r\nHost: t\r\n")
        sock.settimeout(0.25)
        closed = False
        # A slowloris client: one header line at a time, never the end of the block.
        for line in range(40):
            _send(sock, f"X-Slow-{line}: 1\r\n".encode())
            try:
                sock.recv(65536)  # the 408 or the end of the connection: cut off either way
            except TimeoutError:
                continue
            except ConnectionResetError:
                pass
            closed = True
            break
        assert closed, "the server kept reading headers for 10 s"
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + 2


def test_a_body_shorter_than_its_content_length_is_closed_and_counted_408(
    server: ServerProcess,
) -> None:
    before = _registrations(server)
    with _connect(server) as sock:
        _send(sock, CUT_SHORT)
        received = _closed_within(sock, TIMEOUT_MS / 1000 + 3)
        assert received == b"" or received.startswith(b"HTTP/1.1 408")
    _counted_once_more(server, "408", before)


def test_a_body_timeout_shorter_than_the_header_timeout_holds(tmp_path: Path) -> None:
    """The header deadline armed first is later than the body's: the body's still applies."""
    with (
        ServerProcess(
            tmp_path, HTTP_HEADER_TIMEOUT_MS=60_000, HTTP_BODY_TIMEOUT_MS=TIMEOUT_MS
        ) as server,
        _connect(server) as sock,
    ):
        _send(sock, CUT_SHORT)
        received = _closed_within(sock, TIMEOUT_MS / 1000 + 5)
        assert received.startswith(b"HTTP/1.1 408")


def test_a_client_leaving_mid_body_is_counted_499(server: ServerProcess) -> None:
    before = _registrations(server)
    with _connect(server) as sock:
        _send(sock, CUT_SHORT)
    _counted_once_more(server, "499", before)


def test_a_malformed_chunk_mid_body_is_counted_as_the_400_sent(server: ServerProcess) -> None:
    before = _registrations(server)
    with _connect(server) as sock:
        _send(
            sock,
            b"POST /v1/owners/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n8\r\n{"name":\r\nnot-a-size\r\n',
        )
        assert _closed_within(sock, 10).startswith(b"HTTP/1.1 400")
    _counted_once_more(server, "400", before)


def test_an_idle_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    with _connect(server) as sock:
        _closed_within(sock, TIMEOUT_MS / 1000 + 3)


def test_an_idle_keep_alive_connection_outlives_the_clients_own_expiry(
    server: ServerProcess,
) -> None:
    """A client closes its idle connections first (httpx after 5 s): a server closing at the
    same moment would race a request sent meanwhile ("Server disconnected")."""
    with _connect(server) as sock:
        _send(sock, _get("/status"))
        assert _response(sock)[0] == 200
        time.sleep(httpx.Limits().keepalive_expiry + 1)  # the idle time is what is tried
        _send(sock, _get("/status"))
        assert _response(sock)[0] == 200


def test_connections_beyond_the_cap_answer_503(server: ServerProcess) -> None:
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each answered: the server holds them all open (keep-alive)
            _send(sock, _get("/status"))
            assert _response(sock)[0] == 200
        with _connect(server) as extra:
            _send(extra, _get("/status"))
            status, headers, _ = _response(extra)
            assert status == 503 and headers[b"connection"] == b"close"
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the closed connection on its next loop turn
            with _connect(server) as sock:
                _send(sock, _get("/status"))
                if _response(sock)[0] == 200:
                    break
            assert time.monotonic() < deadline, "a freed slot was not reused"
    finally:
        for sock in held:
            sock.close()


def test_malformed_input_is_400_and_the_connection_stays_usable(server: ServerProcess) -> None:
    owner = httpx.post(f"{server.url}/v1/owners/register", json={"name": "malformed"}).json()
    auth = f"Authorization: Bearer {owner['key']}\r\nX-Tasks-Owner-Id: {owner['id']}\r\n".encode()
    register = orjson.dumps(
        {
            "httpRequest": {"url": "https://target.test/x", "method": "GET"},
            "config": {"ca": str(server.workdir / "certs" / "a\x00b.pem")},
        }
    )
    with _connect(server) as sock:
        for request in (
            _get("/v1/queues/%00", auth),
            _get("/v1/queues?offset=9223372036854775808", auth),
            _get("/v1/queues?state=RUNNING%00", auth),
            b"POST /v1/queues/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + auth
            + f"Content-Length: {len(register)}\r\n\r\n".encode()
            + register,
        ):
            _send(sock, request)
            status, _, body = _response(sock)
            assert status == 400, body
            assert set(orjson.loads(body)) == {"action", "message"}
        _send(sock, _get("/v1/queues?offset=9223372036854775807", auth))
        assert _response(sock)[:1] == (200,)
        _send(sock, _get("/status"))
        assert _response(sock)[2] == b"OK"


def test_a_large_body_is_still_read(server: ServerProcess) -> None:
    body = base64.b64encode(b"x" * 20000).decode()
    response = httpx.post(
        f"{server.url}/v1/owners/register",
        content=orjson.dumps({"name": "bodies", "pad": body}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400  # a large body in many packets is read, then validated


def test_a_500_leaves_the_keep_alive_connection_usable(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real uvicorn setup of `serve`, in a thread, with a route made to fail."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(owners, "create", broken)
    port = free_port()
    config = uvicorn.Config(
        create_app(make_settings()), host="127.0.0.1", port=port, **UVICORN_OPTIONS
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)  # polling for readiness
        body = b'{"name": "broken-owner"}'
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            _send(
                sock,
                b"POST /v1/owners/register HTTP/1.1\r\nHost: t\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body,
            )
            status, headers, answer = _response(sock)
            assert status == 500 and headers.get(b"connection") != b"close"
            assert orjson.loads(answer)["message"] == "Internal server error"
            _send(sock, _get("/status"))
            assert _response(sock)[::2] == (200, b"OK")
        assert headers[b"x-content-type-options"] == b"nosniff"
    finally:
        server.should_exit = True
        thread.join(30)
