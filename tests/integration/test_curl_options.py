"""Every curl-level option of SPEC §2, proven on the wire.

Each test builds a registration, maps it with ``prepare`` and sends it through the real
``CurlTransport`` to local servers (``targets``) that record what arrived: the assertion is
about what the target, proxy or DNS server saw, not about which option was set. Servers and
certificates are module-scoped; made-up host names reach 127.0.0.1 through ``resolve``.
"""

from __future__ import annotations

import base64
import email.parser
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pycurl
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.errors import ResponseTooLarge, TransportError
from tasks_server.executor.options import (
    Attempt,
    CurlFeatures,
    materialized,
    prepare,
    unsupported,
)
from tasks_server.executor.transport import CurlResponse
from tasks_server.models.queues import QueueRegistration

from .targets import ServerThread
from .targets.dns import doh_route
from .targets.http import RecordingServer, Request
from .targets.proxy import ForwardProxy
from .targets.tls import Pki, b64

CAP = 100_000
FIRST = Attempt(
    queue_id="01TASK",
    owner_id="01OWNER",
    retry_count=0,
    retry_limit=3,
    due=1_700_000_000_000,
    timeout_ms=10_000,
    signing_secrets=(),
    sent_at_s=1_700_000_000,
)
FEATURES = CurlFeatures.detect()


@dataclass
class Servers:
    pki: Pki
    http: RecordingServer  # cleartext on 127.0.0.1 and ::1 (one port); h2c prior knowledge
    https: RecordingServer  # TLS with ALPN h2 and http/1.1
    mtls: RecordingServer  # TLS that requires a client certificate from the CA
    tls12: RecordingServer  # TLS capped at 1.2
    doh: RecordingServer  # DNS-over-HTTPS on /dns-query
    proxy: ForwardProxy
    proxy_basic: ForwardProxy
    proxy_digest: ForwardProxy
    proxy_tls: ForwardProxy  # an HTTPS proxy
    doh_seen: list[str]

    def all(self) -> list[Any]:
        return [
            self.http,
            self.https,
            self.mtls,
            self.tls12,
            self.doh,
            self.proxy,
            self.proxy_basic,
            self.proxy_digest,
            self.proxy_tls,
        ]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    pki = Pki()
    thread = ServerThread()
    doh_seen: list[str] = []
    records = {"doh.test": "127.0.0.1"}

    async def start() -> Servers:
        return Servers(
            pki=pki,
            http=await RecordingServer(hosts=("127.0.0.1", "::1")).start(),
            https=await RecordingServer(
                ssl_context=pki.server_context(alpn=("h2", "http/1.1"))
            ).start(),
            mtls=await RecordingServer(ssl_context=pki.server_context(client_certs=True)).start(),
            tls12=await RecordingServer(
                ssl_context=pki.server_context(max_version=ssl.TLSVersion.TLSv1_2)
            ).start(),
            doh=await RecordingServer(
                ssl_context=pki.server_context(), handler=doh_route(records, doh_seen)
            ).start(),
            proxy=await ForwardProxy().start(),
            proxy_basic=await ForwardProxy(auth=("basic", "pat", "proxy-pw")).start(),
            proxy_digest=await ForwardProxy(auth=("digest", "pat", "proxy-pw")).start(),
            proxy_tls=await ForwardProxy(ssl_context=pki.server_context()).start(),
            doh_seen=doh_seen,
        )

    started = thread.run(start())
    yield started

    async def stop() -> None:
        for server in started.all():
            await server.stop()

    thread.run(stop())
    thread.close()


@pytest.fixture(autouse=True)
def _forget_requests(servers: Servers) -> None:
    for server in servers.all():
        server.take()
    servers.doh_seen.clear()


@pytest.fixture
async def transport() -> AsyncIterator[CurlTransport]:
    curl = CurlTransport()
    yield curl
    await curl.aclose()


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory: pytest.TempPathFactory, servers: Servers) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    (directory / "ca.pem").write_bytes(servers.pki.ca_pem)
    (directory / "client.pem").write_bytes(servers.pki.client.cert_pem)
    (directory / "client.key").write_bytes(servers.pki.client.key_pem)
    return directory


def registration(
    url: str, method: str = "GET", config: dict[str, Any] | None = None, **request: Any
) -> QueueRegistration:
    body = {"httpRequest": {"url": url, "method": method, **request}, "config": config or {}}
    return QueueRegistration.model_validate(body, context={"now": 0})


async def send(
    transport: CurlTransport,
    reg: QueueRegistration,
    *,
    attempt: Attempt = FIRST,
    certs_dir: Path | None = None,
    cap: int = CAP,
    extra: Sequence[tuple[int, Any]] = (),
) -> CurlResponse:
    assert unsupported(reg, certs_dir=certs_dir) == []
    with materialized(prepare(reg, attempt, certs_dir=certs_dir)) as options:
        return await transport.send([*options, *extra], max_body_bytes=cap, pool="01OWNER")


def one(server: RecordingServer | ForwardProxy) -> Any:
    (request,) = server.take()
    return request


def ca_config(servers: Servers, **config: Any) -> dict[str, Any]:
    return {"ca": b64(servers.pki.ca_pem), **config}


def resolve(host: str, port: int, *addresses: str) -> dict[str, Any]:
    return {"host": host, "port": port, "address": list(addresses or ["127.0.0.1"])}


# --- request shape -------------------------------------------------------------------------


async def test_query_headers_user_agent_and_task_headers(
    servers: Servers, transport: CurlTransport
):
    reg = registration(
        servers.http.url("/shape?keep=1"),
        query={"q": "a b/é", "page": "2"},
        headers={"X-Owner": "yes", "Accept": "text/csv", "X-Tasks-Queue-Id": "forged"},
        config={"userAgent": "Owner-Agent/2.0"},
    )
    response = await send(transport, reg)
    request: Request = one(servers.http)
    assert response.status_code == 200
    assert (request.method, request.version) == ("GET", "HTTP/1.1")
    assert request.target == "/shape?keep=1&q=a%20b%2F%C3%A9&page=2"
    assert request.query == {"keep": ["1"], "q": ["a b/é"], "page": ["2"]}
    assert request.header("x-owner") == "yes"
    assert request.header("accept") == "text/csv"
    assert request.header("user-agent") == "Owner-Agent/2.0"
    assert request.headers_named("x-tasks-queue-id") == ["01TASK"]
    assert request.header("x-tasks-retry-count") is None


async def test_default_user_agent_and_retry_headers(servers: Servers, transport: CurlTransport):
    retry = Attempt(
        "01TASK",
        "01OWNER",
        retry_count=2,
        retry_limit=5,
        due=1_700_000_123_456,
        timeout_ms=5000,
        signing_secrets=(),
        sent_at_s=1_700_000_123,
    )
    await send(transport, registration(servers.http.url("/retry")), attempt=retry)
    request: Request = one(servers.http)
    assert request.header("user-agent") == (
        "Tasks-Server/1.0 (compatible; Linux x86_64; +http://tasks-server)"
    )
    assert request.header("x-tasks-queue-id") == "01TASK"
    assert request.header("x-tasks-retry-count") == "2"
    assert request.header("x-tasks-retry-limit") == "5"
    assert request.header("x-tasks-estimate-next-retry-at") == "1700000123456"


@pytest.mark.parametrize(
    ("method", "data", "body"),
    [
        ("POST", None, b""),
        ("POST", "hello", b"hello"),
        ("PUT", "put body", b"put body"),
        ("PATCH", None, b""),
        ("DELETE", None, b""),
        ("GET", None, b""),
    ],
)
async def test_methods(
    servers: Servers, transport: CurlTransport, method: str, data: str | None, body: bytes
):
    extra = {"data": data} if data else {}
    await send(transport, registration(servers.http.url("/m"), method, **extra))
    request: Request = one(servers.http)
    assert (request.method, request.body) == (method, body)
    if method in ("POST", "PUT", "PATCH"):  # a body-less write still says so
        assert request.header("content-length") == str(len(body))


async def test_text_data_is_text_plain_unless_the_owner_says(
    servers: Servers, transport: CurlTransport
):
    await send(transport, registration(servers.http.url("/t"), "POST", data="héllo"))
    request: Request = one(servers.http)
    assert (request.body, request.header("content-type")) == ("héllo".encode(), "text/plain")

    reg = registration(
        servers.http.url("/t"), "POST", data="<a/>", headers={"content-type": "text/xml"}
    )
    await send(transport, reg)
    assert one(servers.http).headers_named("content-type") == ["text/xml"]


async def test_form_data_is_multipart(servers: Servers, transport: CurlTransport):
    fields = [{"name": "a", "value": "1"}, {"name": "b", "value": "two\r\nlines é"}]
    await send(transport, registration(servers.http.url("/form"), "PATCH", data=fields))
    request: Request = one(servers.http)
    assert request.method == "PATCH"
    content_type = request.header("content-type") or ""
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    parts = {part.get_param("name", header="content-disposition"): part for part in message.walk()}
    assert parts["a"].get_payload(decode=True) == b"1"
    assert parts["b"].get_payload(decode=True) == "two\r\nlines é".encode()


async def test_json_data_with_nested_objects(servers: Servers, transport: CurlTransport):
    data = {"user": {"name": "é", "tags": {"a": True, "n": 1.5}}, "none": None}
    await send(transport, registration(servers.http.url("/json"), "PUT", data=data))
    request: Request = one(servers.http)
    assert request.header("content-type") == "application/json"
    assert orjson.loads(request.body) == data


async def test_cookie_list(servers: Servers, transport: CurlTransport):
    cookies = [{"name": "sid", "value": "abc"}, {"name": "theme", "value": "dark"}]
    await send(transport, registration(servers.http.url("/c"), cookie=cookies))
    assert one(servers.http).header("cookie") == "sid=abc; theme=dark"


@pytest.mark.parametrize(
    "content",
    [
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tfrom-file\n"
        "other.test\tFALSE\t/\tFALSE\t0\tstranger\tno\n",
        "Set-Cookie: sid=from-file; Path=/\n",
    ],
    ids=["netscape", "header"],
)
async def test_cookie_file(servers: Servers, transport: CurlTransport, content: str):
    reg = registration(servers.http.url("/c"), cookie=b64(content.encode()))
    await send(transport, reg)
    assert one(servers.http).header("cookie") == "sid=from-file"


async def test_referer_auto_on_redirect_and_explicit(servers: Servers, transport: CurlTransport):
    first = servers.http.url("/redirect?to=/landed")
    await send(transport, registration(first))
    redirect, landed = servers.http.take()
    assert redirect.header("referer") is None
    assert landed.header("referer") == first

    await send(
        transport,
        registration(servers.http.url("/r"), config={"refererUrl": "https://from.test/page"}),
    )
    assert one(servers.http).header("referer") == "https://from.test/page"


async def test_response_too_large(servers: Servers, transport: CurlTransport):
    with pytest.raises(ResponseTooLarge):
        await send(transport, registration(servers.http.url("/bytes/5000")), cap=1000)
    assert (
        await send(transport, registration(servers.http.url("/bytes/1000")), cap=1000)
    ).body == b"x" * 1000


# --- auth toward the target ---------------------------------------------------------------


async def test_auth_basic(servers: Servers, transport: CurlTransport):
    reg = registration(servers.http.url("/b"), authBasic={"username": "alice", "password": "pä:ss"})
    await send(transport, reg)
    expected = base64.b64encode("alice:pä:ss".encode()).decode()
    assert one(servers.http).header("authorization") == f"Basic {expected}"


async def test_auth_digest_is_accepted_by_a_checking_server(
    servers: Servers, transport: CurlTransport
):
    good = {"username": "alice", "password": "wonderland"}
    response = await send(transport, registration(servers.http.url("/digest"), authDigest=good))
    assert (response.status_code, response.body) == (200, b"digest ok")
    challenge, answer = servers.http.take()
    assert challenge.header("authorization") is None
    assert (answer.header("authorization") or "").startswith('Digest username="alice"')

    bad = {"username": "alice", "password": "wrong"}
    response = await send(transport, registration(servers.http.url("/digest"), authDigest=bad))
    assert response.status_code == 401


async def test_auth_ntlm(servers: Servers, transport: CurlTransport):
    reg = registration(servers.http.url("/n"), authNtlm={"username": "u", "password": "p"})
    if not FEATURES.ntlm:
        assert unsupported(reg, certs_dir=None) == [
            {
                "path": "httpRequest.authNtlm",
                "message": f"needs libcurl built with NTLM support; this libcurl"
                f" ({FEATURES.version}) lacks it",
            }
        ]
        return
    await send(transport, reg)  # only with an NTLM-capable libcurl
    assert (one(servers.http).header("authorization") or "").startswith("NTLM TlRMTVNTUAAB")


async def test_auth_aws_sigv4_verifies_with_botocore(servers: Servers, transport: CurlTransport):
    aws = {
        "provider1": "aws",
        "provider2": "amz",
        "region": "eu-west-3",
        "service": "execute-api",
        "key": "AKIDEXAMPLE",
        "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    }
    reg = registration(
        servers.http.url("/v1/items"),
        "POST",
        query={"b": "2", "a": "1"},
        headers={"X-Custom": "yes"},
        data={"k": "v"},
        authAwsSigv4=aws,
    )
    await send(transport, reg)
    request: Request = one(servers.http)
    authorization = request.header("authorization") or ""
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    assert fields["Credential"].endswith("/eu-west-3/execute-api/aws4_request")
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date"} <= set(signed)

    copy = AWSRequest(
        method=request.method,
        url=f"http://{request.header('host')}{request.target}",
        headers={name: request.header(name) for name in signed},
        data=request.body,
    )
    copy.context["timestamp"] = request.header("x-amz-date")
    signer = SigV4Auth(Credentials(aws["key"], aws["secret"]), aws["service"], aws["region"])
    string_to_sign = signer.string_to_sign(copy, signer.canonical_request(copy))
    assert fields["Signature"] == signer.signature(string_to_sign, copy)


# --- TLS -----------------------------------------------------------------------------------


async def test_ca_as_base64(servers: Servers, transport: CurlTransport):
    reg = registration(servers.https.url("/tls"), config=ca_config(servers))
    assert (await send(transport, reg)).status_code == 200
    assert one(servers.https).tls["version"] in ("TLSv1.2", "TLSv1.3")


async def test_ca_as_path_inside_certs_dir(
    servers: Servers, transport: CurlTransport, certs_dir: Path
):
    reg = registration(servers.https.url("/tls"), config={"ca": str(certs_dir / "ca.pem")})
    assert (await send(transport, reg, certs_dir=certs_dir)).status_code == 200


def test_ca_path_outside_certs_dir_is_refused(certs_dir: Path, tmp_path: Path):
    outside = tmp_path / "ca.pem"
    outside.write_bytes(b"x")
    (certs_dir / "escape.pem").unlink(missing_ok=True)
    (certs_dir / "escape.pem").symlink_to(outside)
    for path, message in [
        (str(outside), f"{outside} is not inside CERTS_DIR"),
        (
            f"{certs_dir}/../{outside.name}",
            f"{certs_dir}/../{outside.name} is not inside CERTS_DIR",
        ),
        (str(certs_dir / "escape.pem"), f"{certs_dir / 'escape.pem'} resolves outside CERTS_DIR"),
        (str(certs_dir / "nope.pem"), f"{certs_dir / 'nope.pem'} does not exist in CERTS_DIR"),
    ]:
        reg = registration("https://127.0.0.1:1/x", config={"ca": path})
        assert unsupported(reg, certs_dir=certs_dir) == [{"path": "config.ca", "message": message}]
    reg = registration("https://127.0.0.1:1/x", config={"ca": str(certs_dir / "ca.pem")})
    assert unsupported(reg, certs_dir=None)[0]["message"].startswith("file paths are refused")


async def test_without_ca_the_attempt_fails_with_the_tls_error(
    servers: Servers, transport: CurlTransport
):
    with pytest.raises(TransportError) as caught:
        await send(transport, registration(servers.https.url("/tls")))
    assert caught.value.status_code == 500
    assert "unable to get local issuer certificate" in caught.value.message
    assert servers.https.take() == []


async def test_insecure(servers: Servers, transport: CurlTransport):
    reg = registration(servers.https.url("/tls"), config={"insecure": True})
    assert (await send(transport, reg)).status_code == 200


@pytest.mark.parametrize("form", ["pem", "der", "p12", "path"])
async def test_mutual_tls(servers: Servers, transport: CurlTransport, certs_dir: Path, form: str):
    client = servers.pki.client
    config = {
        "pem": {"cert": {"value": b64(client.cert_pem)}, "key": b64(client.key_pem)},
        "der": {
            "cert": {"value": b64(client.cert_der)},
            "certType": "DER",
            "key": b64(client.key_der),
            "keyType": "DER",
        },
        "p12": {
            "cert": {"value": b64(client.p12), "password": client.p12_password},
            "certType": "P12",
        },
        "path": {
            "cert": {"value": str(certs_dir / "client.pem")},
            "key": str(certs_dir / "client.key"),
        },
    }[form]
    reg = registration(servers.mtls.url("/mtls"), config=ca_config(servers, **config))
    assert (await send(transport, reg, certs_dir=certs_dir)).status_code == 200
    assert one(servers.mtls).tls["client_cert"] == "client.test"


async def test_mutual_tls_without_client_cert_fails(servers: Servers, transport: CurlTransport):
    with pytest.raises(TransportError):
        await send(transport, registration(servers.mtls.url("/mtls"), config=ca_config(servers)))
    assert servers.mtls.take() == []


async def test_tls_versions(servers: Servers, transport: CurlTransport):
    demand_13 = ca_config(servers, tlsVersion="1.3")
    with pytest.raises(TransportError):
        await send(transport, registration(servers.tls12.url("/v"), config=demand_13))
    assert servers.tls12.take() == []

    await send(
        transport,
        registration(servers.tls12.url("/v"), config=ca_config(servers, tlsVersion="1.2")),
    )
    assert one(servers.tls12).tls["version"] == "TLSv1.2"

    capped = ca_config(servers, tlsMaxVersion="1.2")
    await send(transport, registration(servers.https.url("/v"), config=capped))
    assert one(servers.https).tls["version"] == "TLSv1.2"
    await send(transport, registration(servers.https.url("/v"), config=demand_13))
    assert one(servers.https).tls["version"] == "TLSv1.3"


async def test_session_id_cache(servers: Servers, transport: CurlTransport):
    """Each request opens a new connection; only with the cache on is the session resumed."""
    fresh = [(pycurl.FRESH_CONNECT, 1), (pycurl.FORBID_REUSE, 1)]
    url = servers.tls12.url("/s")
    for session_id in (True, True, False, True):
        reg = registration(url, config=ca_config(servers, sessionId=session_id))
        await send(transport, reg, extra=fresh)
    reused = [request.tls["session_reused"] for request in servers.tls12.take()]
    assert reused == [False, True, False, True]


async def test_cert_status_needs_a_stapled_ocsp_response(
    servers: Servers, transport: CurlTransport
):
    """Documented behaviour: certStatus demands OCSP stapling; a target that staples nothing
    (as here, and as many do) fails the attempt with libcurl's OCSP error."""
    reg = registration(servers.https.url("/ocsp"), config=ca_config(servers, certStatus=True))
    with pytest.raises(TransportError) as caught:
        await send(transport, reg)
    assert "OCSP" in caught.value.message


# --- redirects -----------------------------------------------------------------------------


async def test_location_and_redirect_attempts(servers: Servers, transport: CurlTransport):
    response = await send(
        transport, registration(servers.http.url("/hops/2"), config={"location": False})
    )
    assert response.status_code == 302
    assert len(servers.http.take()) == 1

    response = await send(
        transport, registration(servers.http.url("/hops/3"), config={"redirectAttempts": 3})
    )
    assert (response.status_code, response.effective_url) == (200, servers.http.url("/hops/0"))
    with pytest.raises(TransportError) as caught:
        await send(
            transport, registration(servers.http.url("/hops/3"), config={"redirectAttempts": 2})
        )
    assert "Maximum (2) redirects followed" in caught.value.message


async def test_proto_and_proto_redirect(servers: Servers, transport: CurlTransport):
    to_http = servers.http.url(f"/redirect?to={servers.http.url('/landed')}")
    with pytest.raises(TransportError) as caught:
        await send(transport, registration(to_http, config={"protoRedirect": "https"}))
    assert "http" in caught.value.message.lower()
    assert [r.path for r in servers.http.take()] == ["/redirect"]
    assert (
        await send(transport, registration(to_http, config={"protoRedirect": "http"}))
    ).status_code == 200

    with pytest.raises(TransportError) as caught:
        await send(transport, registration(servers.http.url("/p"), config={"proto": "https"}))
    assert 'Protocol "http"' in caught.value.message
    assert servers.http.take()[-1].path == "/landed"


@pytest.mark.parametrize("trusted", [False, True])
async def test_location_trusted(servers: Servers, transport: CurlTransport, trusted: bool):
    port = servers.http.port
    hop = f"http://first.test:{port}/redirect?to=http://second.test:{port}/landed"
    config: dict[str, Any] = {
        "resolve": [resolve("first.test", port), resolve("second.test", port)]
    }
    credentials = {"username": "alice", "password": "secret"}
    if trusted:
        config["locationTrusted"] = credentials
    await send(transport, registration(hop, config=config, authBasic=credentials))
    first, second = servers.http.take()
    assert first.header("host") == f"first.test:{port}"
    assert second.header("host") == f"second.test:{port}"
    assert (
        first.header(
            "authorization",
        )
        == "Basic " + base64.b64encode(b"alice:secret").decode()
    )
    assert second.header("authorization") == (first.header("authorization") if trusted else None)


# --- proxy ---------------------------------------------------------------------------------


async def test_http_proxy_forwards_with_proxy_headers(servers: Servers, transport: CurlTransport):
    config = {
        "proxy": {"protocol": "http", "host": "127.0.0.1", "port": servers.proxy.port},
        "proxyHeaders": {"X-Proxy-Only": "p"},
    }
    reg = registration(servers.http.url("/via"), headers={"X-Target": "t"}, config=config)
    assert (await send(transport, reg)).status_code == 200
    asked = one(servers.proxy)
    assert (asked.method, asked.target) == ("GET", servers.http.url("/via"))
    assert asked.header("x-proxy-only") == "p"
    assert one(servers.http).header("x-target") == "t"


async def test_connect_tunnel_http_1_0_and_separate_headers(
    servers: Servers, transport: CurlTransport
):
    config = ca_config(
        servers,
        proxy={"protocol": "http", "host": "127.0.0.1", "port": servers.proxy.port},
        proxyHeaders={"X-Proxy-Only": "p"},
        proxyHttpVersion="1.0",
    )
    reg = registration(servers.https.url("/tunnel"), headers={"X-Target": "t"}, config=config)
    assert (await send(transport, reg)).status_code == 200
    connect = one(servers.proxy)
    assert (connect.method, connect.target, connect.version) == (
        "CONNECT",
        f"127.0.0.1:{servers.https.port}",
        "HTTP/1.0",
    )
    assert connect.header("x-proxy-only") == "p"
    assert connect.header("x-target") is None
    arrived: Request = one(servers.https)
    assert arrived.header("x-target") == "t"
    assert arrived.header("x-proxy-only") is None


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_proxy_auth(servers: Servers, transport: CurlTransport, scheme: str):
    proxy = servers.proxy_basic if scheme == "basic" else servers.proxy_digest
    where = {"protocol": "http", "host": "127.0.0.1", "port": proxy.port}
    reg = registration(servers.http.url("/pa"), config={"proxy": where})
    assert (await send(transport, reg)).status_code == 407
    assert servers.http.take() == []
    proxy.take()

    option = "proxyAuthBasic" if scheme == "basic" else "proxyAuthDigest"
    config = {"proxy": where, option: {"username": "pat", "password": "proxy-pw"}}
    assert (
        await send(transport, registration(servers.http.url("/pa"), config=config))
    ).status_code == 200
    assert (proxy.take()[-1].header("proxy-authorization") or "").lower().startswith(scheme)
    assert one(servers.http).header("proxy-authorization") is None


async def test_proxy_auth_ntlm(servers: Servers):
    config = {
        "proxy": {"protocol": "http", "host": "127.0.0.1", "port": servers.proxy.port},
        "proxyAuthNtlm": {"username": "u", "password": "p"},
    }
    problems = unsupported(registration(servers.http.url("/n"), config=config), certs_dir=None)
    assert [p["path"] for p in problems] == ([] if FEATURES.ntlm else ["config.proxyAuthNtlm"])


async def test_https_proxy_and_proxy_insecure(servers: Servers, transport: CurlTransport):
    where = {"protocol": "https", "host": "127.0.0.1", "port": servers.proxy_tls.port}
    with pytest.raises(TransportError) as caught:
        await send(transport, registration(servers.http.url("/hp"), config={"proxy": where}))
    assert "SSL" in caught.value.message or "certificate" in caught.value.message

    # libcurl tunnels through an https proxy with HTTP/1.1 whatever PROXYTYPE says, so 1.0
    # there would be silently dropped: it is refused at registration instead.
    refused = registration(
        servers.http.url("/hp"), config={"proxy": where, "proxyHttpVersion": "1.0"}
    )
    assert [p["path"] for p in unsupported(refused, certs_dir=None)] == ["config.proxyHttpVersion"]

    config = {"proxy": where, "proxyInsecure": True}
    assert (
        await send(transport, registration(servers.http.url("/hp"), config=config))
    ).status_code == 200
    assert one(servers.proxy_tls).target == servers.http.url("/hp")
    assert one(servers.http).path == "/hp"


# --- connection ----------------------------------------------------------------------------


async def test_resolve_made_up_name(servers: Servers, transport: CurlTransport):
    port = servers.http.port
    config = {"resolve": [resolve("made-up.test", port)]}
    await send(transport, registration(f"http://made-up.test:{port}/r", config=config))
    assert one(servers.http).header("host") == f"made-up.test:{port}"


@pytest.mark.parametrize(("ip_version", "peer"), [(4, "127.0.0.1"), (6, "::1")])
async def test_ip_version(servers: Servers, transport: CurlTransport, ip_version: int, peer: str):
    port = servers.http.port
    config = {"resolve": [resolve("dual.test", port, "127.0.0.1", "::1")], "ipVersion": ip_version}
    await send(transport, registration(f"http://dual.test:{port}/ip", config=config))
    assert one(servers.http).peer[0] == peer


async def test_http_versions(servers: Servers, transport: CurlTransport):
    await send(transport, registration(servers.https.url("/h"), config=ca_config(servers)))
    assert one(servers.https).version == "HTTP/1.1"  # 1.1 by default, though h2 is offered
    # A new connection: "2" allows libcurl to reuse an idle HTTP/1.1 one to the same origin.
    h2 = registration(servers.https.url("/h"), config=ca_config(servers, httpVersion="2"))
    await send(transport, h2, extra=[(pycurl.FRESH_CONNECT, 1)])
    request: Request = one(servers.https)
    assert (request.version, request.tls["alpn"]) == ("HTTP/2", "h2")
    assert request.header("x-tasks-queue-id") == "01TASK"
    await send(
        transport, registration(servers.http.url("/h"), config={"httpVersion": "2-prior-knowledge"})
    )
    assert one(servers.http).version == "HTTP/2"
    await send(transport, registration(servers.http.url("/h"), config={"httpVersion": "1.0"}))
    assert one(servers.http).version == "HTTP/1.0"


async def test_http_0_9(servers: Servers, transport: CurlTransport):
    """An HTTP/0.9 answer (no status line) is accepted only with httpVersion 0.9; libcurl
    then reports status 0."""
    with pytest.raises(TransportError) as caught:
        await send(transport, registration(servers.http.url("/http09")))
    assert "HTTP/0.9" in caught.value.message
    response = await send(
        transport, registration(servers.http.url("/http09"), config={"httpVersion": "0.9"})
    )
    assert (response.status_code, response.body) == (0, b"<html>an HTTP/0.9 answer</html>\n")


@pytest.mark.parametrize("seconds", [0, 45])
async def test_keep_alive_duration(servers: Servers, transport: CurlTransport, seconds: int):
    """Read back the socket options libcurl set on the connection it opened."""
    seen: dict[str, int] = {}

    def sockopt(fd: int, _purpose: int) -> int:
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
            seen["on"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            seen["idle"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            seen["interval"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        return 0

    reg = registration(servers.http.url("/ka"), config={"keepAliveDuration": seconds})
    await send(transport, reg, extra=[(pycurl.SOCKOPTFUNCTION, sockopt)])
    assert seen["on"] == (1 if seconds else 0)
    if seconds:
        assert (seen["idle"], seen["interval"]) == (seconds, seconds)


async def test_ha_proxy_protocol(servers: Servers, transport: CurlTransport):
    await send(transport, registration(servers.http.url("/ha"), config={"haProxyProtocol": True}))
    line = one(servers.http).proxy_line
    assert line is not None and line.startswith("PROXY TCP4 127.0.0.1 127.0.0.1 ")
    assert line.endswith(f" {servers.http.port}")

    with_client_ip = registration(
        servers.http.url("/ha"), config={"haProxyClientIp": "203.0.113.7"}
    )
    if FEATURES.haproxy_client_ip:
        await send(transport, with_client_ip)
        # The given client address is the source (libcurl 8.23 repeats it as the destination).
        assert (one(servers.http).proxy_line or "").startswith("PROXY TCP4 203.0.113.7 ")
    else:
        [problem] = unsupported(with_client_ip, certs_dir=None)
        assert problem["path"] == "config.haProxyClientIp"

    await send(transport, registration(servers.http.url("/ha")))
    assert one(servers.http).proxy_line is None


async def test_dns_server(servers: Servers, transport: CurlTransport):
    reg = registration(
        f"http://dns.test:{servers.http.port}/dns", config={"dnsServer": ["127.0.0.1"]}
    )
    if not FEATURES.dns_servers:
        assert unsupported(reg, certs_dir=None) == [
            {
                "path": "config.dnsServer",
                "message": f"needs libcurl built with c-ares; this libcurl ({FEATURES.version})"
                " lacks it",
            }
        ]
        return
    # c-ares builds only: dnsServer has no port, so honouring it needs a server on :53.
    pytest.skip("a c-ares libcurl would query 127.0.0.1:53, which a test cannot bind")


async def test_doh_url(servers: Servers, transport: CurlTransport):
    assert FEATURES.doh, "this libcurl has DNS-over-HTTPS, so dohUrl is honoured"
    port = servers.http.port
    config: dict[str, Any] = {"dohUrl": servers.doh.url("/dns-query")}
    reg = registration(f"http://doh.test:{port}/doh", config=config)
    with pytest.raises(TransportError):  # the DoH server's certificate is not trusted
        await send(transport, reg)
    assert servers.http.take() == []

    config["dohInsecure"] = True
    await send(transport, registration(f"http://doh.test:{port}/doh", config=config))
    assert one(servers.http).header("host") == f"doh.test:{port}"
    assert "doh.test" in servers.doh_seen

    # The target's `ca` is also what the DoH server is verified with.
    verified = ca_config(servers, dohUrl=servers.doh.url("/dns-query"))
    await send(transport, registration(f"http://doh.test:{port}/doh", config=verified))
    assert one(servers.http).path == "/doh"


async def test_hsts_from_header_upgrades_a_redirect(servers: Servers, transport: CurlTransport):
    """The target sends Strict-Transport-Security, then redirects to http: on the same name.
    With hsts on, libcurl upgrades that redirect to https."""
    port = servers.https.port
    url = f"https://tls.test:{port}/sts?to=http://tls.test:{port}/landed"
    config = ca_config(servers, resolve=[resolve("tls.test", port)], hsts=True)
    response = await send(transport, registration(url, config=config))
    assert (response.status_code, response.effective_url) == (
        200,
        f"https://tls.test:{port}/landed",
    )
    assert [r.path for r in servers.https.take()] == ["/sts", "/landed"]

    del config["hsts"]
    fresh = CurlTransport()  # a handle that never saw the STS header (see test_no_hsts_leak)
    try:
        with pytest.raises(TransportError):  # cleartext HTTP to a TLS port
            await send(fresh, registration(url, config=config))
    finally:
        await fresh.aclose()


async def test_hsts_cache_file(servers: Servers, transport: CurlTransport):
    port = servers.https.port
    cache = b'# HSTS cache\ntls.test "20991231 23:59:59"\n'
    config = ca_config(servers, resolve=[resolve("tls.test", port)], hsts=b64(cache))
    response = await send(transport, registration(f"http://tls.test:{port}/cached", config=config))
    assert response.effective_url == f"https://tls.test:{port}/cached"
    assert one(servers.https).path == "/cached"


def test_certificate_blobs_never_touch_disk(servers: Servers):
    client = servers.pki.client
    config = ca_config(servers, cert={"value": b64(client.cert_pem)}, key=b64(client.key_pem))
    prepared = prepare(registration(servers.https.url("/x"), config=config), FIRST, certs_dir=None)
    assert prepared.files == {}
    values = dict(prepared.options)
    assert values[pycurl.CAINFO_BLOB] == servers.pki.ca_pem
    assert values[pycurl.SSLKEY_BLOB] == client.key_pem
    assert pycurl.CAINFO not in values and pycurl.SSLKEY not in values


def test_attempt_files_are_private_and_removed(servers: Servers):
    reg = registration(
        servers.http.url("/c"),
        cookie=b64(b"Set-Cookie: a=1\n"),
        config={"hsts": b64(b'x "20991231 00:00:00"\n')},
    )
    with materialized(prepare(reg, FIRST, certs_dir=None)) as options:
        paths = [Path(v) for k, v in options if k in (pycurl.COOKIEFILE, pycurl.HSTS)]
        assert len(paths) == 2
        assert {os.stat(p).st_mode & 0o777 for p in paths} == {0o600}
        assert os.stat(paths[0].parent).st_mode & 0o777 == 0o700
    assert not paths[0].parent.exists()


# --- isolation between tasks (one transport serves every owner) ----------------------------
# These pin transport bugs reported with this module: libcurl's curl_easy_reset() keeps the
# cookie jar and the HSTS cache of a pooled handle, and RESOLVE entries (and DoH answers) go
# into the DNS cache every transfer shares. Remove each marker once the transport isolates it.

LEAK = "transport bug: state of one task reaches the next (see the options report)"


async def test_no_cookie_leak(servers: Servers, transport: CurlTransport):
    jar = b64(b"127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\towner-a\n")
    await send(transport, registration(servers.http.url("/a"), cookie=jar))
    await send(transport, registration(servers.http.url("/b")))
    first, second = servers.http.take()
    assert first.header("cookie") == "sid=owner-a"
    assert second.header("cookie") is None


async def test_no_hsts_leak(servers: Servers, transport: CurlTransport):
    port = servers.https.port
    url = f"https://tls.test:{port}/sts?to=http://tls.test:{port}/landed"
    config = ca_config(servers, resolve=[resolve("tls.test", port)], hsts=True)
    await send(transport, registration(url, config=config))
    del config["hsts"]
    try:
        response = await send(transport, registration(url, config=config))
    except TransportError:
        return
    assert response.effective_url.startswith("http:"), "HSTS learnt by one task upgraded another"


async def test_no_resolve_leak(servers: Servers, transport: CurlTransport):
    url = f"http://victim.test:{servers.http.port}/x"
    config = {"resolve": [resolve("victim.test", servers.http.port)]}
    await send(transport, registration(url, config=config))
    try:
        await send(transport, registration(url))
    except TransportError as exc:
        assert "resolve" in exc.message
    else:
        raise AssertionError("a task without `resolve` reached the address another task chose")


async def test_prepare_failure_is_a_500_outcome(tmp_path: Path) -> None:
    """A stored cert path no longer allowed becomes the attempt's outcome, not a crash."""
    from tasks_server.executor.runner import Runner

    class NeverCalled:
        async def send(self, options, *, max_body_bytes, pool):  # type: ignore[no-untyped-def]
            raise AssertionError("must not send")

    reg = registration("http://127.0.0.1:9/x", config={"ca": str(tmp_path / "ca.pem")})
    outcome = await Runner(NeverCalled(), max_body_bytes=100, certs_dir=None).run(reg, FIRST)
    assert (outcome.status_code, outcome.succeeded) == (500, False)
