"""The destination guard (SPEC §10.2) on the wire: a refused address gets no connection.

A target listens on 127.0.0.2 (Linux routes all of 127/8 to lo) and ``DESTINATION_DENY``
refuses 127.0.0.2/32; every way of reaching it (directly, a redirect from an allowed target
on 127.0.0.1, ``resolve``, a proxy, IPv4-mapped IPv6, the integer form, a DoH server or a
DoH answer) must leave its connection count at zero and name the guard in the error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.errors import DestinationRefused
from tasks_server.executor.guard import DestinationGuard
from tasks_server.executor.options import Attempt, prepare
from tasks_server.executor.runner import Runner
from tasks_server.executor.transport import CurlResponse
from tasks_server.models.attempts import AttemptOutcome
from tasks_server.models.queues import QueueRegistration

from .targets import ServerThread
from .targets.dns import doh_route
from .targets.http import RecordingServer
from .targets.tls import Pki, b64

DENIED = "127.0.0.2"
REFUSED = f"destination {DENIED} refused by DESTINATION_DENY"
ATTEMPT = Attempt(
    queue_id="01TASK",
    owner_id="01OWNER",
    retry_count=0,
    retry_limit=0,
    due=0,
    timeout_ms=10_000,
    signing_secrets=(),
    sent_at_s=0,
)


@dataclass
class Servers:
    pki: Pki
    allowed: RecordingServer  # 127.0.0.1
    denied: RecordingServer  # 127.0.0.2
    denied_doh: RecordingServer  # a DoH server on 127.0.0.2
    doh: RecordingServer  # a DoH server on 127.0.0.1 answering "sneaky.test" with 127.0.0.2

    def all(self) -> list[RecordingServer]:
        return [self.allowed, self.denied, self.denied_doh, self.doh]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    pki = Pki()
    thread = ServerThread()
    records = {"sneaky.test": DENIED}

    async def start() -> Servers:
        return Servers(
            pki=pki,
            allowed=await RecordingServer().start(),
            denied=await RecordingServer(hosts=(DENIED,)).start(),
            denied_doh=await RecordingServer(
                hosts=(DENIED,),
                ssl_context=pki.server_context(),
                handler=doh_route(records, []),
            ).start(),
            doh=await RecordingServer(
                ssl_context=pki.server_context(), handler=doh_route(records, [])
            ).start(),
        )

    started = thread.run(start())
    yield started

    async def stop() -> None:
        for server in started.all():
            await server.stop()

    thread.run(stop())
    thread.close()


@pytest.fixture(autouse=True)
def _forget(servers: Servers) -> None:
    for server in servers.all():
        server.take()
        server.connections = 0


@pytest.fixture
async def deny() -> AsyncIterator[CurlTransport]:
    transport = CurlTransport(guard=DestinationGuard.parse(f"{DENIED}/32", None))
    yield transport
    await transport.aclose()


def registration(url: str, **config: Any) -> QueueRegistration:
    body = {"httpRequest": {"url": url, "method": "GET"}, "config": config}
    return QueueRegistration.model_validate(body, context={"now": 0})


async def send(transport: CurlTransport, reg: QueueRegistration) -> CurlResponse:
    prepared = prepare(reg, ATTEMPT, certs_dir=None)
    return await transport.send(prepared.options, max_body_bytes=100_000, pool="01OWNER")


async def refused(transport: CurlTransport, reg: QueueRegistration, servers: Servers) -> str:
    with pytest.raises(DestinationRefused) as caught:
        await send(transport, reg)
    assert servers.denied.connections == 0
    assert servers.denied_doh.connections == 0
    return caught.value.message


async def test_the_denied_address_is_reachable_without_the_guard(servers: Servers) -> None:
    """The premise of every test here: 127.0.0.2 answers when nothing refuses it."""
    transport = CurlTransport()
    try:
        response = await send(transport, registration(servers.denied.url("/premise", DENIED)))
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert servers.denied.connections == 1


async def test_direct(deny: CurlTransport, servers: Servers) -> None:
    reg = registration(servers.denied.url("/direct", DENIED))
    assert await refused(deny, reg, servers) == REFUSED


async def test_allowed_addresses_still_connect(deny: CurlTransport, servers: Servers) -> None:
    response = await send(deny, registration(servers.allowed.url("/fine")))
    assert response.status_code == 200
    assert [r.path for r in servers.allowed.take()] == ["/fine"]


async def test_a_handle_that_kept_its_options_still_checks(
    deny: CurlTransport, servers: Servers
) -> None:
    """A pooled handle keeps its options and callbacks between transfers: the next one, of
    the same shape to a denied address, meets the guard all the same."""
    assert (await send(deny, registration(servers.allowed.url("/first")))).status_code == 200
    reg = registration(servers.denied.url("/second", DENIED))
    assert await refused(deny, reg, servers) == REFUSED
    assert deny.idle_handles == {"01OWNER": 1}  # one handle served both


async def test_redirect_hop(deny: CurlTransport, servers: Servers) -> None:
    hop = servers.denied.url("/hop", DENIED)
    reg = registration(servers.allowed.url(f"/redirect?to={hop}"))
    assert await refused(deny, reg, servers) == REFUSED
    assert [r.path for r in servers.allowed.take()] == ["/redirect"]


async def test_resolve(deny: CurlTransport, servers: Servers) -> None:
    port = servers.denied.port
    reg = registration(
        f"http://made-up.test:{port}/resolved",
        resolve=[{"host": "made-up.test", "port": port, "address": [DENIED]}],
    )
    assert await refused(deny, reg, servers) == REFUSED


async def test_proxy(deny: CurlTransport, servers: Servers) -> None:
    proxy = {"protocol": "http", "host": DENIED, "port": servers.denied.port}
    reg = registration(servers.allowed.url("/via-proxy"), proxy=proxy)
    assert await refused(deny, reg, servers) == REFUSED
    assert servers.allowed.take() == []


@pytest.mark.parametrize("host", [f"[::ffff:{DENIED}]", "2130706434", "0x7f000002", "127.2"])
async def test_literal_forms(deny: CurlTransport, servers: Servers, host: str) -> None:
    url = f"http://{host}:{servers.denied.port}/literal"
    reg = registration(url, ipVersion=6 if ":" in host else 4)
    assert await refused(deny, reg, servers) == REFUSED


async def test_doh_server(deny: CurlTransport, servers: Servers) -> None:
    reg = registration(
        f"http://sneaky.test:{servers.allowed.port}/doh",
        dohUrl=servers.denied_doh.url("/dns-query", DENIED),
        dohInsecure=True,
    )
    message = await refused(deny, reg, servers)
    assert message == f"DoH server: {REFUSED}"
    assert servers.allowed.take() == []


async def test_doh_answer(deny: CurlTransport, servers: Servers) -> None:
    """An allowed DoH server's answer pointing at a refused address gets no connection."""
    reg = registration(
        f"http://sneaky.test:{servers.denied.port}/answered",
        dohUrl=servers.doh.url("/dns-query"),
        ca=b64(servers.pki.ca_pem),
    )
    assert await refused(deny, reg, servers) == REFUSED
    assert servers.doh.take() != []  # the name was resolved over DoH


async def test_allow_list_refuses_everything_else(servers: Servers) -> None:
    transport = CurlTransport(guard=DestinationGuard.parse("none", "127.0.0.1/32"))
    try:
        assert (await send(transport, registration(servers.allowed.url("/in")))).status_code == 200
        reg = registration(servers.denied.url("/out", DENIED))
        message = await refused(transport, reg, servers)
    finally:
        await transport.aclose()
    assert message == f"destination {DENIED} refused by DESTINATION_ALLOW"


async def test_a_refusal_is_a_final_transport_outcome(
    deny: CurlTransport, servers: Servers
) -> None:
    reg = registration(servers.allowed.url(f"/redirect?to={servers.denied.url('/x', DENIED)}"))
    outcome = await Runner(deny, max_body_bytes=100, certs_dir=None).run(reg, ATTEMPT)
    assert (outcome.status_code, outcome.kind, outcome.final) == (
        500,
        AttemptOutcome.TRANSPORT,
        True,
    )
    assert outcome.error == REFUSED and outcome.body == REFUSED.encode()
    assert servers.denied.connections == 0
