"""The options mapping (``executor.options``), option by option, without a network."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pycurl
import pytest
from pydantic import ValidationError

from tasks_server.executor.errors import TransportError
from tasks_server.executor.options import (
    CURLHSTS_ENABLE,
    CURLHSTS_READONLYFILE,
    DOH_SSL_VERIFYHOST,
    DOH_SSL_VERIFYPEER,
    Attempt,
    CurlFeatures,
    Prepared,
    Preparer,
    materialize,
    materialized,
    prepare,
    unsupported,
)
from tasks_server.models.queues import DEFAULT_USER_AGENT, QueueRegistration

URL = "https://api.test/v1/items"
FIRST = Attempt(
    queue_id="01Q",
    owner_id="01OWNER",
    retry_count=0,
    retry_limit=2,
    due=1_700_000_000_000,
    timeout_ms=30_000,
    signing_secrets=(),
    sent_at_s=1_700_000_000,
)
ALL = CurlFeatures(
    version="9.9.9",
    ntlm=True,
    http2=True,
    hsts=True,
    https_proxy=True,
    ipv6=True,
    dns_servers=True,
    doh=True,
    aws_sigv4=True,
    blobs=True,
    cert_status=True,
    haproxy_client_ip=True,
)
NONE = dataclasses.replace(ALL, **{f.name: False for f in dataclasses.fields(ALL)[1:]})
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
FRESH = {pycurl.FRESH_CONNECT: 1, pycurl.FORBID_REUSE: 1}


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def reg(config: dict[str, Any] | None = None, **request: Any) -> QueueRegistration:
    request = {"url": URL, "method": "GET", **request}
    return QueueRegistration.model_validate(
        {"httpRequest": request, "config": config or {}}, context={"now": 0}
    )


def options(r: QueueRegistration, attempt: Attempt = FIRST, **kw: Any) -> dict[int, Any]:
    prepared = prepare(r, attempt, certs_dir=kw.get("certs_dir"))
    pairs = prepared.options
    assert len({o for o, _ in pairs}) == len(pairs), "an option is set twice"
    return dict(pairs)


def added(r: QueueRegistration, **kw: Any) -> dict[int, Any]:
    """Options that differ from (or are absent in) the minimal GET's."""
    base = options(reg())
    return {k: v for k, v in options(r, **kw).items() if k not in base or base[k] != v}


def headers(r: QueueRegistration, attempt: Attempt = FIRST) -> list[str | bytes]:
    return options(r, attempt)[pycurl.HTTPHEADER]


def test_minimal_get_exact_options():
    prepared = prepare(reg(), FIRST, certs_dir=None)
    assert prepared == Prepared(
        [
            (pycurl.URL, URL),
            (pycurl.HTTPGET, 1),
            (pycurl.HTTPHEADER, ["X-Tasks-Queue-Id: 01Q"]),
            (pycurl.USERAGENT, DEFAULT_USER_AGENT),
            (pycurl.TIMEOUT_MS, 30_000),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.IPRESOLVE, pycurl.IPRESOLVE_V4),
            (pycurl.AUTOREFERER, 1),
            (pycurl.TCP_KEEPALIVE, 1),
            (pycurl.TCP_KEEPIDLE, 30),
            (pycurl.TCP_KEEPINTVL, 30),
            (pycurl.FOLLOWLOCATION, 1),
            (pycurl.MAXREDIRS, 8),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
        ],
        {},
    )
    assert prepare(reg(), FIRST, certs_dir=None) == prepared  # deterministic


def test_attempts_of_one_request_model_share_only_what_no_attempt_changes(tmp_path: Path):
    r = reg(method="POST", data={"n": 1}, config={"ca": f"{tmp_path}/ca.pem"})
    preparer = Preparer(certs_dir=tmp_path)
    first = preparer.prepare(r, FIRST)
    assert first == prepare(r, FIRST, certs_dir=tmp_path)
    snapshot = [(option, list(v) if isinstance(v, list) else v) for option, v in first.options]
    retry = dataclasses.replace(FIRST, queue_id="01R", retry_count=1, signing_secrets=(b"k",))
    again = dict(preparer.prepare(r, retry).options)
    assert first.options == snapshot  # the later attempt changed nothing of the first's
    assert "X-Tasks-Queue-Id: 01R" in again[pycurl.HTTPHEADER]
    assert "X-Tasks-Queue-Id: 01Q" not in again[pycurl.HTTPHEADER]
    assert "X-Tasks-Retry-Count: 1" in again[pycurl.HTTPHEADER]
    assert again[pycurl.POSTFIELDS] == b'{"n":1}'
    with pytest.raises(TransportError, match="not inside CERTS_DIR"):  # the setting changed
        prepare(r, FIRST, certs_dir=tmp_path / "elsewhere")


def test_each_preparer_keeps_its_own_requests():
    """What a preparer keeps is its app's: two apps in one process share none of it."""
    r = reg(cookie=b64("Set-Cookie: a=1\n"))
    one, two = Preparer(certs_dir=None), Preparer(certs_dir=None)
    kept = one.prepare(r, FIRST).files
    assert one.prepare(r, FIRST).files is kept  # the attempts of one model share its mapping
    assert two.prepare(r, FIRST).files is not kept
    assert two.prepare(r, FIRST).files == kept


def test_a_preparer_keeps_the_recent_requests_only():
    preparer = Preparer(certs_dir=None)
    oldest, *recent = [reg(cookie=b64(f"Set-Cookie: n={n}\n")) for n in range(257)]
    kept = preparer.prepare(oldest, FIRST).files
    assert preparer.prepare(oldest, FIRST).files is kept
    for r in recent:  # 256 newer models push the oldest out
        preparer.prepare(r, FIRST)
    assert preparer.prepare(oldest, FIRST).files is not kept
    assert preparer.prepare(recent[-1], FIRST).files is preparer.prepare(recent[-1], FIRST).files


# --- URL, method, headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "query", "expected"),
    [
        (URL, {"a": "1", "b": "x y/é&"}, f"{URL}?a=1&b=x%20y%2F%C3%A9%26"),
        (f"{URL}?keep=1", {"a": "1"}, f"{URL}?keep=1&a=1"),
        (f"{URL}#top", {"a": "1"}, f"{URL}?a=1#top"),
        (f"{URL}?k=1#top", {"a": "[1]"}, f"{URL}?k=1&a=%5B1%5D#top"),
        ("https://api.test/ünï", None, "https://api.test/%C3%BCn%C3%AF"),
        ("https://bücher.test:8443/p?q=ü", None, "https://xn--bcher-kva.test:8443/p?q=%C3%BC"),
        ("https://u:pé@bücher.test/", None, "https://u:p%C3%A9@xn--bcher-kva.test/"),
        ("https://[::1]:8443/é", None, "https://[::1]:8443/%C3%A9"),
        # SPEC §15.10: targets may end in "/" or "?"; a query joins an empty one cleanly.
        ("https://api.test/", {"a": "1"}, "https://api.test/?a=1"),
        (f"{URL}?", {"a": "1"}, f"{URL}?a=1"),
        (f"{URL}?k=1&", {"a": "1"}, f"{URL}?k=1&a=1"),
        (f"{URL}?", None, f"{URL}?"),
    ],
)
def test_url_and_query(url: str, query: dict[str, str] | None, expected: str):
    assert options(reg(url=url, query=query))[pycurl.URL] == expected


STORED = {"check_future": False, "stored": True}


@pytest.mark.parametrize(
    "host",
    [
        "api.test",
        "bücher.test",
        "ÀÉ.test",
        "a" * 63 + ".test",
        "svc_internal",
        "127.1",
        "[::1]",
        "a..é",
        "é." + "a" * 64,
        "a" * 64 + ".test",
        "a..b",
        "a!é.test",
        "x.test。",
        "169.254.169.254.",
        "",
    ],
)
def test_registration_refuses_exactly_what_prepare_cannot_encode(host: str):
    """SPEC §15.1: one encoding decides both, so a registered task always has a URL for
    libcurl, and a stored one from before the rule fails its attempt with a message."""
    document = {"httpRequest": {"url": f"https://{host}:8443/p", "method": "GET"}}
    stored = QueueRegistration.model_validate(document, context=STORED)  # no URL check
    try:
        QueueRegistration.model_validate(document, context={"now": 0})
    except ValidationError as exc:
        assert [e["loc"] for e in exc.errors()] == [("httpRequest", "url")]
        with pytest.raises(TransportError, match=r"^httpRequest\.url: .*host"):
            prepare(stored, FIRST, certs_dir=None)
    else:
        url = options(stored)[pycurl.URL]
        assert url.isascii() and url.endswith(":8443/p")


@pytest.mark.parametrize(
    ("method", "data", "expected"),
    [
        ("GET", None, {pycurl.HTTPGET: 1}),
        ("get", None, {pycurl.HTTPGET: 1}),
        ("POST", None, {pycurl.POSTFIELDS: b""}),
        ("POST", "x", {pycurl.POSTFIELDS: b"x"}),
        ("PUT", None, {pycurl.CUSTOMREQUEST: "PUT", pycurl.POSTFIELDS: b""}),
        ("PATCH", "x", {pycurl.CUSTOMREQUEST: "PATCH", pycurl.POSTFIELDS: b"x"}),
        ("DELETE", None, {pycurl.CUSTOMREQUEST: "DELETE"}),
    ],
)
def test_method(method: str, data: str | None, expected: dict[int, Any]):
    extra = {"data": data} if data else {}
    got = options(reg(method=method, **extra))
    methods = (pycurl.HTTPGET, pycurl.CUSTOMREQUEST, pycurl.POSTFIELDS)
    assert {k: v for k, v in got.items() if k in methods} == expected


def test_get_and_delete_drop_data():
    for method in ("GET", "DELETE"):
        assert pycurl.POSTFIELDS not in options(reg(method=method, data="ignored"))


def test_owner_headers_then_task_headers():
    owner = {"X-B": "2", "x-a": "1", "X-Tasks-Queue-Id": "forged", "X-Tasks-Retry-Count": "9"}
    assert headers(reg(headers=owner)) == ["X-B: 2", "x-a: 1", "X-Tasks-Queue-Id: 01Q"]


def test_retry_headers():
    retry = Attempt(
        "01Q",
        "01OWNER",
        retry_count=3,
        retry_limit=5,
        due=1_700_000_999_000,
        timeout_ms=1000,
        signing_secrets=(),
        sent_at_s=1_700_000_999,
    )
    assert headers(reg(), retry) == [
        "X-Tasks-Queue-Id: 01Q",
        "X-Tasks-Retry-Count: 3",
        "X-Tasks-Retry-Limit: 5",
        "X-Tasks-Estimate-Next-Retry-At: 1700000999000",
    ]
    assert options(reg(), retry)[pycurl.TIMEOUT_MS] == 1000


def test_non_ascii_text_goes_as_utf8_bytes():
    got = options(
        reg(
            headers={"X-Name": "Zoë"},
            cookie=[{"name": "n", "value": "é"}],
            authBasic={"username": "zoë", "password": "pässword"},
            config={"userAgent": "Agent/ü 1.0"},
        )
    )
    assert got[pycurl.HTTPHEADER][0] == "X-Name: Zoë".encode()
    assert got[pycurl.COOKIE] == "n=é".encode()
    assert (got[pycurl.USERNAME], got[pycurl.PASSWORD]) == ("zoë".encode(), "pässword".encode())
    assert got[pycurl.USERAGENT] == "Agent/ü 1.0".encode()


def test_user_agent():
    r = reg(headers={"User-Agent": "dropped"}, config={"userAgent": "Mine/1.0"})
    assert options(r)[pycurl.USERAGENT] == "Mine/1.0"
    assert headers(r) == ["X-Tasks-Queue-Id: 01Q"]


# --- body ----------------------------------------------------------------------------------


def test_text_data():
    got = options(reg(method="POST", data="héllo"))
    assert got[pycurl.POSTFIELDS] == "héllo".encode()
    assert got[pycurl.HTTPHEADER] == ["Content-Type: text/plain", "X-Tasks-Queue-Id: 01Q"]
    owned = headers(reg(method="POST", data="<a/>", headers={"content-type": "text/xml"}))
    assert owned == ["content-type: text/xml", "X-Tasks-Queue-Id: 01Q"]


def test_json_data():
    data = {"a": {"b": {"c": 1}}, "t": True, "n": None, "f": 1.5, "s": "é"}
    got = options(reg(method="PUT", data=data))
    assert (
        got[pycurl.POSTFIELDS] == '{"a":{"b":{"c":1}},"t":true,"n":null,"f":1.5,"s":"é"}'.encode()
    )
    assert got[pycurl.HTTPHEADER][0] == "Content-Type: application/json"
    owned = headers(reg(method="PUT", data=data, headers={"Content-Type": "application/x+json"}))
    assert owned == ["Content-Type: application/x+json", "X-Tasks-Queue-Id: 01Q"]


def test_form_data_is_encoded_multipart():
    fields = [{"name": "a", "value": "1"}, {"name": "b", "value": "é"}]
    r = reg(method="POST", data=fields, headers={"Content-Type": "text/plain", "X-K": "v"})
    got = options(r)
    content_type = got[pycurl.HTTPHEADER][1]
    assert got[pycurl.HTTPHEADER][0] == "X-K: v"  # the owner's Content-Type is replaced
    assert content_type.startswith("Content-Type: multipart/form-data; boundary=")
    boundary = content_type.rsplit("=", 1)[1]
    assert (
        got[pycurl.POSTFIELDS]
        == (
            f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="b"\r\n\r\né\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    assert options(r)[pycurl.HTTPHEADER] == got[pycurl.HTTPHEADER]  # deterministic


def test_form_boundary_never_appears_in_a_value():
    first = options(reg(method="POST", data=[{"name": "a", "value": "x"}]))
    boundary = first[pycurl.HTTPHEADER][0].rsplit("=", 1)[1]
    # A value holding that very boundary forces another one (its seed differs anyway).
    fields = [{"name": "a", "value": f"x--{boundary}"}]
    body = options(reg(method="POST", data=fields))[pycurl.POSTFIELDS]
    other = body.split(b"\r\n", 1)[0][2:].decode()
    assert other != boundary and body.count(other.encode()) == 2


# --- cookies, auth -------------------------------------------------------------------------


def test_cookie_list():
    cookies = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert added(reg(cookie=cookies)) == {pycurl.COOKIE: "a=1; b=2"}


def test_cookie_file_is_a_file_not_an_option():
    prepared = prepare(reg(cookie=b64("Set-Cookie: a=1\n")), FIRST, certs_dir=None)
    assert prepared.files == {pycurl.COOKIEFILE: b"Set-Cookie: a=1\n"}
    assert pycurl.COOKIEFILE not in dict(prepared.options)


@pytest.mark.parametrize(
    ("field", "method"),
    [
        ("authBasic", pycurl.HTTPAUTH_BASIC),
        ("authDigest", pycurl.HTTPAUTH_DIGEST),
        ("authNtlm", pycurl.HTTPAUTH_NTLM),
    ],
)
def test_http_auth(field: str, method: int):
    r = reg(**{field: {"username": "u", "password": "p:w"}})
    assert added(r) == {pycurl.HTTPAUTH: method, pycurl.USERNAME: "u", pycurl.PASSWORD: "p:w"}


def test_strongest_auth_wins():
    r = reg(
        authBasic={"username": "b", "password": "b"},
        authDigest={"username": "d", "password": "d"},
    )
    assert added(r) == {
        pycurl.HTTPAUTH: pycurl.HTTPAUTH_DIGEST,
        pycurl.USERNAME: "d",
        pycurl.PASSWORD: "d",
    }


AWS = {
    "provider1": "aws",
    "provider2": "amz",
    "region": "eu-west-3",
    "service": "s3",
    "key": "AK:ID",
    "secret": "se/cret",
}


def test_aws_sigv4():
    r = reg(authAwsSigv4=AWS, authBasic={"username": "b", "password": "b"})
    assert added(r) == {
        pycurl.AWS_SIGV4: "aws:amz:eu-west-3:s3",
        pycurl.USERNAME: "AK:ID",
        pycurl.PASSWORD: "se/cret",
    }


def test_location_trusted():
    trusted = {"username": "t", "password": "tp"}
    assert added(reg(config={"locationTrusted": trusted})) == {
        pycurl.HTTPAUTH: pycurl.HTTPAUTH_BASIC,
        pycurl.USERNAME: "t",
        pycurl.PASSWORD: "tp",
        pycurl.UNRESTRICTED_AUTH: 1,
    }
    r = reg(authDigest={"username": "d", "password": "d"}, config={"locationTrusted": trusted})
    assert added(r) == {
        pycurl.HTTPAUTH: pycurl.HTTPAUTH_DIGEST,
        pycurl.USERNAME: "t",
        pycurl.PASSWORD: "tp",
        pycurl.UNRESTRICTED_AUTH: 1,
    }
    r = reg(authAwsSigv4=AWS, config={"locationTrusted": trusted})
    assert added(r)[pycurl.USERNAME] == "AK:ID"
    assert added(r)[pycurl.UNRESTRICTED_AUTH] == 1


# --- connection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.9", {pycurl.HTTP_VERSION: pycurl.CURL_HTTP_VERSION_1_0, pycurl.HTTP09_ALLOWED: 1}),
        ("1.0", {pycurl.HTTP_VERSION: pycurl.CURL_HTTP_VERSION_1_0}),
        ("1.1", {}),
        ("2", {pycurl.HTTP_VERSION: pycurl.CURL_HTTP_VERSION_2_0}),
        ("2-prior-knowledge", {pycurl.HTTP_VERSION: pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE}),
    ],
)
def test_http_version(version: str, expected: dict[int, Any]):
    assert added(reg(config={"httpVersion": version})) == expected


def test_ip_version_and_referer():
    assert added(reg(config={"ipVersion": 6})) == {pycurl.IPRESOLVE: pycurl.IPRESOLVE_V6}
    got = options(reg(config={"refererUrl": "https://from.test/é"}))
    assert got[pycurl.REFERER] == "https://from.test/%C3%A9"
    assert pycurl.AUTOREFERER not in got
    assert options(reg(config={"refererUrl": "auto"}))[pycurl.AUTOREFERER] == 1


def test_keep_alive_duration():
    got = options(reg(config={"keepAliveDuration": 0}))
    assert got[pycurl.TCP_KEEPALIVE] == 0
    assert pycurl.TCP_KEEPIDLE not in got and pycurl.TCP_KEEPINTVL not in got
    assert added(reg(config={"keepAliveDuration": 600})) == {
        pycurl.TCP_KEEPIDLE: 600,
        pycurl.TCP_KEEPINTVL: 600,
    }


def test_redirects_and_protocols():
    got = options(reg(config={"location": False, "redirectAttempts": 3}))
    assert got[pycurl.FOLLOWLOCATION] == 0 and pycurl.MAXREDIRS not in got
    assert added(reg(config={"redirectAttempts": 0})) == {pycurl.MAXREDIRS: 0}
    assert added(reg(config={"proto": "https", "protoRedirect": "http"})) == {
        pycurl.PROTOCOLS: pycurl.PROTO_HTTPS,
        pycurl.REDIR_PROTOCOLS: pycurl.PROTO_HTTP,
    }


def test_resolve_dns_and_doh_take_a_connection_of_their_own():
    r = reg(
        config={
            "resolve": [
                {"host": "api.test", "port": 443, "address": ["127.0.0.1", "::1"]},
                {"host": "b.test", "port": 80, "address": ["10.0.0.1"]},
            ]
        }
    )
    assert added(r) == {
        pycurl.RESOLVE: ["api.test:443:127.0.0.1,[::1]", "b.test:80:10.0.0.1"],
        **FRESH,
    }
    r = reg(config={"dnsServer": ["10.0.0.53", "2001:db8::53"]})
    assert added(r) == {pycurl.DNS_SERVERS: "10.0.0.53,[2001:db8::53]", **FRESH}
    assert added(reg(config={"dohUrl": "https://doh.test/dns-query"})) == {
        pycurl.DOH_URL: "https://doh.test/dns-query",
        **FRESH,
    }
    assert added(reg(config={"dohUrl": "https://doh.test/q", "dohInsecure": True})) == {
        pycurl.DOH_URL: "https://doh.test/q",
        DOH_SSL_VERIFYPEER: 0,
        DOH_SSL_VERIFYHOST: 0,
        **FRESH,
    }
    assert added(reg(config={"dohInsecure": True})) == {}  # nothing to apply it to


def test_ha_proxy():
    assert added(reg(config={"haProxyProtocol": True})) == {pycurl.HAPROXYPROTOCOL: 1, **FRESH}
    if hasattr(pycurl, "HAPROXY_CLIENT_IP"):  # pycurl built against libcurl 8.2 or later
        assert added(reg(config={"haProxyClientIp": "203.0.113.9"})) == {
            pycurl.HAPROXYPROTOCOL: 1,
            pycurl.HAPROXY_CLIENT_IP: "203.0.113.9",
            **FRESH,
        }


def test_hsts():
    assert added(reg(config={"hsts": True})) == {pycurl.HSTS_CTRL: CURLHSTS_ENABLE}
    assert added(reg(config={"hsts": False})) == {}
    prepared = prepare(
        reg(config={"hsts": b64('api.test "20991231 00:00:00"\n')}), FIRST, certs_dir=None
    )
    assert dict(prepared.options)[pycurl.HSTS_CTRL] == CURLHSTS_ENABLE | CURLHSTS_READONLYFILE
    assert prepared.files == {pycurl.HSTS: b'api.test "20991231 00:00:00"\n'}


# --- TLS -----------------------------------------------------------------------------------


def test_tls_switches():
    assert added(reg(config={"sessionId": False})) == {pycurl.SSL_SESSIONID_CACHE: 0}
    assert added(reg(config={"insecure": True})) == {
        pycurl.SSL_VERIFYPEER: 0,
        pycurl.SSL_VERIFYHOST: 0,
    }
    assert added(reg(config={"certStatus": True})) == {pycurl.SSL_VERIFYSTATUS: 1}
    assert added(reg(config={"certStatus": False})) == {}


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("1.2", None, pycurl.SSLVERSION_TLSv1_2),
        (None, "1.2", pycurl.SSLVERSION_DEFAULT | pycurl.SSLVERSION_MAX_TLSv1_2),
        ("1.0", "1.1", pycurl.SSLVERSION_TLSv1_0 | pycurl.SSLVERSION_MAX_TLSv1_1),
        ("1.3", "1.3", pycurl.SSLVERSION_TLSv1_3 | pycurl.SSLVERSION_MAX_TLSv1_3),
    ],
)
def test_tls_versions(low: str | None, high: str | None, expected: int):
    config = {k: v for k, v in (("tlsVersion", low), ("tlsMaxVersion", high)) if v}
    assert added(reg(config=config)) == {pycurl.SSLVERSION: expected}


def test_certificates_as_blobs():
    config = {
        "ca": b64(PEM),
        "cert": {"value": b64(b"\x30\x82cert"), "password": "pw"},
        "certType": "P12",
        "key": b64(b"\x30\x82key"),
        "keyType": "DER",
    }
    prepared = prepare(reg(config=config), FIRST, certs_dir=None)
    assert prepared.files == {}
    assert added(reg(config=config)) == {
        pycurl.CAINFO_BLOB: PEM,
        pycurl.SSLCERT_BLOB: b"\x30\x82cert",
        pycurl.SSLCERTTYPE: "P12",
        pycurl.KEYPASSWD: "pw",
        pycurl.SSLKEY_BLOB: b"\x30\x82key",
        pycurl.SSLKEYTYPE: "DER",
    }


def test_wrapped_base64_is_accepted():
    wrapped = "\n".join(b64(PEM * 3)[i : i + 64] for i in range(0, len(b64(PEM * 3)), 64))
    assert options(reg(config={"ca": wrapped}))[pycurl.CAINFO_BLOB] == PEM * 3


def test_certificates_as_paths(tmp_path: Path):
    config = {
        "ca": f"{tmp_path}/ca.pem",
        "cert": {"value": f"{tmp_path}/sub/c.pem"},
        "key": f"{tmp_path}/k.pem",
    }
    assert added(reg(config=config), certs_dir=tmp_path) == {
        pycurl.CAINFO: f"{tmp_path}/ca.pem",
        pycurl.SSLCERT: f"{tmp_path}/sub/c.pem",
        pycurl.SSLCERTTYPE: "PEM",
        pycurl.SSLKEY: f"{tmp_path}/k.pem",
        pycurl.SSLKEYTYPE: "PEM",
    }


@pytest.mark.parametrize("certs_dir", [None, "/srv/certs"])
def test_a_path_no_longer_allowed_fails_the_attempt(certs_dir: str | None):
    r = reg(config={"ca": "/srv/certs/../secrets/ca.pem"})
    with pytest.raises(TransportError, match=r"config\.ca: .* is not inside CERTS_DIR"):
        prepare(r, FIRST, certs_dir=Path(certs_dir) if certs_dir else None)


# --- proxy ---------------------------------------------------------------------------------


def test_proxy():
    proxy = {"protocol": "http", "host": "proxy.test", "port": 3128}
    assert added(reg(config={"proxy": proxy})) == {pycurl.PROXY: "http://proxy.test:3128"}
    v6 = {"protocol": "https", "host": "::1"}
    assert added(reg(config={"proxy": v6})) == {pycurl.PROXY: "https://[::1]"}
    idn = {"protocol": "http", "host": "bücher.test"}
    assert added(reg(config={"proxy": idn})) == {pycurl.PROXY: "http://xn--bcher-kva.test"}
    assert added(
        reg(
            config={
                "proxy": proxy,
                "proxyHeaders": {"X-P": "1"},
                "proxyInsecure": True,
                "proxyHttpVersion": "1.0",
                "proxyAuthBasic": {"username": "b", "password": "b"},
                "proxyAuthDigest": {"username": "d", "password": "dp"},
            }
        )
    ) == {
        pycurl.PROXY: "http://proxy.test:3128",
        pycurl.PROXYTYPE: pycurl.PROXYTYPE_HTTP_1_0,
        pycurl.PROXYHEADER: ["X-P: 1"],
        pycurl.HEADEROPT: pycurl.HEADER_SEPARATE,
        pycurl.PROXY_SSL_VERIFYPEER: 0,
        pycurl.PROXY_SSL_VERIFYHOST: 0,
        pycurl.PROXYAUTH: pycurl.HTTPAUTH_DIGEST,
        pycurl.PROXYUSERNAME: "d",
        pycurl.PROXYPASSWORD: "dp",
    }
    r = reg(
        config={
            "proxy": proxy,
            "proxyHttpVersion": "1.1",
            "proxyAuthNtlm": {"username": "n", "password": "n"},
        }
    )
    assert added(r) == {
        pycurl.PROXY: "http://proxy.test:3128",
        pycurl.PROXYTYPE: pycurl.PROXYTYPE_HTTP,
        pycurl.PROXYAUTH: pycurl.HTTPAUTH_NTLM,
        pycurl.PROXYUSERNAME: "n",
        pycurl.PROXYPASSWORD: "n",
    }


def test_proxy_options_without_a_proxy_do_nothing():
    config = {
        "proxyHeaders": {"X-P": "1"},
        "proxyInsecure": True,
        "proxyAuthBasic": {"username": "b", "password": "b"},
    }
    assert added(reg(config=config)) == {}


# --- unsupported ---------------------------------------------------------------------------

EVERY_FEATURE = reg(
    authNtlm={"username": "u", "password": "p"},
    authAwsSigv4=AWS,
    config={
        "proxy": {"protocol": "https", "host": "proxy.test"},
        "proxyAuthNtlm": {"username": "u", "password": "p"},
        "dnsServer": ["10.0.0.53"],
        "dohUrl": "https://doh.test/q",
        "httpVersion": "2",
        "hsts": True,
        "ipVersion": 6,
        "certStatus": True,
        "haProxyClientIp": "203.0.113.9",
        "ca": b64(PEM),
    },
)


def test_unsupported_lists_every_missing_feature():
    assert unsupported(EVERY_FEATURE, certs_dir=None, features=ALL) == []
    problems = unsupported(EVERY_FEATURE, certs_dir=None, features=NONE)
    assert [p["path"] for p in problems] == [
        "httpRequest.authNtlm",
        "httpRequest.authAwsSigv4",
        "config.proxyAuthNtlm",
        "config.dnsServer",
        "config.dohUrl",
        "config.httpVersion",
        "config.hsts",
        "config.ipVersion",
        "config.certStatus",
        "config.haProxyClientIp",
        "config.proxy.protocol",
        "config.ca",
    ]
    assert (
        problems[3]["message"] == "needs libcurl built with c-ares; this libcurl (9.9.9) lacks it"
    )
    assert all(p["message"].startswith("needs libcurl built with ") for p in problems)


def test_unsupported_http2_prior_knowledge():
    r = reg(config={"httpVersion": "2-prior-knowledge"})
    problems = unsupported(r, certs_dir=None, features=NONE)
    assert [p["path"] for p in problems] == ["config.httpVersion"]


def test_unsupported_http_1_0_through_an_https_proxy():
    proxy = {"protocol": "https", "host": "proxy.test"}
    r = reg(config={"proxy": proxy, "proxyHttpVersion": "1.0"})
    assert unsupported(r, certs_dir=None, features=ALL) == [
        {
            "path": "config.proxyHttpVersion",
            "message": "1.0 applies to an http proxy only; libcurl speaks HTTP/1.1 to an https one",
        }
    ]
    r = reg(config={"proxy": {**proxy, "protocol": "http"}, "proxyHttpVersion": "1.0"})
    assert unsupported(r, certs_dir=None, features=ALL) == []


def test_unsupported_engine_types():
    r = reg(config={"certType": "ENG", "keyType": "ENG"})
    problems = unsupported(r, certs_dir=None, features=ALL)
    assert [p["path"] for p in problems] == ["config.certType", "config.keyType"]
    assert "CURLOPT_SSLENGINE" in problems[0]["message"]


def test_unsupported_bad_base64_or_relative_path():
    r = reg(config={"ca": "ca.pem", "cert": {"value": "not base64!"}, "key": b64(b"k")})
    message = "must be base64 of the file content, or an absolute file path inside CERTS_DIR"
    assert unsupported(r, certs_dir=None, features=ALL) == [
        {"path": "config.ca", "message": message},
        {"path": "config.cert.value", "message": message},
    ]


def test_unsupported_non_ascii_certificate_is_a_problem_not_an_error():
    problems = unsupported(reg(config={"key": "cl\u00e9"}), certs_dir=None, features=ALL)
    assert [p["path"] for p in problems] == ["config.key"]


def test_unsupported_paths(tmp_path: Path):
    certs = tmp_path / "certs"
    (certs / "sub").mkdir(parents=True)
    (certs / "ca.pem").write_bytes(PEM)
    (certs / "sub" / "c.pem").write_bytes(PEM)
    outside = tmp_path / "secret.pem"
    outside.write_bytes(PEM)
    (certs / "link.pem").symlink_to(outside)
    (certs / "inner.pem").symlink_to(certs / "ca.pem")

    def problem(path: str, certs_dir: Path | None = certs) -> list[str]:
        found = unsupported(reg(config={"key": path}), certs_dir=certs_dir, features=ALL)
        return [p["message"] for p in found]

    assert problem(f"{certs}/ca.pem") == []
    assert problem(f"{certs}/sub/c.pem") == []
    assert problem(f"{certs}/inner.pem") == []  # a symlink that stays inside is fine
    assert problem(str(outside)) == [f"{outside} is not inside CERTS_DIR"]
    assert problem(f"{certs}/../secret.pem") == [f"{certs}/../secret.pem is not inside CERTS_DIR"]
    assert problem("/etc/passwd") == ["/etc/passwd is not inside CERTS_DIR"]
    assert problem(f"{certs}/link.pem") == [f"{certs}/link.pem resolves outside CERTS_DIR"]
    assert problem(f"{certs}/missing.pem") == [f"{certs}/missing.pem does not exist in CERTS_DIR"]
    assert problem(f"{certs}/sub") == [f"{certs}/sub is not a file"]
    assert problem(f"{certs}/ca.pem", None) == [
        "file paths are refused: CERTS_DIR is not set (send the content as base64)"
    ]
    # A path passes whatever this libcurl lacks; only blobs need blob support.
    assert unsupported(reg(config={"ca": f"{certs}/ca.pem"}), certs_dir=certs, features=NONE) == []


def test_detect_reads_this_libcurl():
    features = CurlFeatures.detect()
    info = pycurl.version_info()
    assert features.version == info[1]
    assert features.ntlm == bool(info[4] & pycurl.VERSION_NTLM)
    assert features.http2 == bool(info[4] & pycurl.VERSION_HTTP2)
    assert features.dns_servers == (info[9] is not None)  # c-ares version, when built with it
    assert CurlFeatures.detect() is features  # probed once


# --- files ---------------------------------------------------------------------------------


def test_materialize_writes_private_files(tmp_path: Path):
    prepared = Prepared([(pycurl.URL, URL)], {pycurl.COOKIEFILE: b"c", pycurl.HSTS: b"h"})
    got = materialize(prepared, tmp_path)
    assert got[0] == (pycurl.URL, URL)
    paths = dict(got[1:])
    assert Path(paths[pycurl.COOKIEFILE]).read_bytes() == b"c"
    assert Path(paths[pycurl.HSTS]).read_bytes() == b"h"
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths.values()} == {0o600}
    with pytest.raises(FileExistsError):  # never writes through an existing file or link
        materialize(prepared, tmp_path)


def test_materialized_temp_dir_lives_for_the_block():
    prepared = Prepared([(pycurl.URL, URL)], {pycurl.COOKIEFILE: b"c"})
    with materialized(prepared) as got:
        path = Path(dict(got)[pycurl.COOKIEFILE])
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.read_bytes() == b"c"
    assert not path.parent.exists()
    with materialized(Prepared([(pycurl.URL, URL)], {})) as got:
        assert got == [(pycurl.URL, URL)]
