import base64
import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tasks_server.models.queues import (
    DEFAULT_USER_AGENT,
    MAX_DELAY_MS,
    ListQuery,
    QueueConfig,
    QueueConfigOut,
    QueueOut,
    QueueRegistration,
    QueueState,
    QueueSummary,
    execution_time,
    redact,
)

NOW = 1_700_000_000_000
CTX = {"now": NOW, "tz": "UTC", "check_future": True}
URL = "https://target.example/hook"
B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n").decode()
CREDS = {"username": "alice", "password": "s3cret"}
RESOLVE = {"host": "target.example", "port": 443, "address": ["203.0.113.7"]}


def body(request: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"httpRequest": {"url": URL, "method": "POST", **(request or {})}, **top}


def valid(request: dict[str, Any] | None = None, **top: Any) -> QueueRegistration:
    return QueueRegistration.model_validate(body(request, **top), context=CTX)


def errors(data: dict[str, Any], context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        QueueRegistration.model_validate(data, context=CTX if context is None else context)
    return info.value.errors()


def refused(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """The messages of the errors under `loc`, asserting there is at least one."""
    found = [e["msg"] for e in errors(data) if e["loc"][: len(loc)] == loc]
    assert found, f"no error under {loc}: {errors(data)}"
    return " | ".join(found)


# --- shape and strictness ----------------------------------------------------------------


def test_minimal_registration_gets_every_default() -> None:
    reg = valid()
    assert reg.http_request.method == "POST"
    assert reg.metadata is None
    dumped = reg.config.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == {
        "executionDelay": 1,
        "executeImmediately": False,
        "retry": 0,
        "retryInterval": 1,
        "retryExponential": False,  # forced: retry ≤ 1
        "retryJitter": False,
        "ignoreStatusCode": [],
        "timeout": 30000,
        "httpVersion": "1.1",
        "userAgent": DEFAULT_USER_AGENT,
        "ipVersion": 4,
        "refererUrl": "AUTO",
        "keepAliveDuration": 30,
        "sessionId": True,
        "insecure": False,
        "traceResponseData": True,
        "certType": "PEM",
        "keyType": "PEM",
        "location": True,
        "redirectAttempts": 8,
        "dohInsecure": False,
        "proxyInsecure": False,
        "haProxyProtocol": False,
        "circuitBreaker": True,
    }


def test_loc_uses_camel_case_names() -> None:
    errs = errors(body({"url": "ftp://x/y", "authBasic": {"username": ""}}))
    assert {e["loc"] for e in errs} == {
        ("httpRequest", "url"),
        ("httpRequest", "authBasic", "username"),
        ("httpRequest", "authBasic", "password"),
    }


def test_http_request_is_required() -> None:
    assert errors({})[0]["loc"] == ("httpRequest",)
    assert {e["loc"] for e in errors({"httpRequest": {}})} == {
        ("httpRequest", "url"),
        ("httpRequest", "method"),
    }


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({**body(), "extra": 1}, ("extra",)),
        (body({"extra": 1}), ("httpRequest", "extra")),
        (body(config={"extra": 1}), ("config", "extra")),
        (body({"authBasic": {**CREDS, "extra": 1}}), ("httpRequest", "authBasic", "extra")),
        (body({"data": [{"name": "a", "value": "b", "x": 1}]}), ("httpRequest", "data", "list", 0)),
        (
            body({"cookie": [{"name": "a", "value": "b", "x": 1}]}),
            ("httpRequest", "cookie", "list"),
        ),
        (body(config={"cert": {"value": B64, "x": 1}}), ("config", "cert", "x")),
        (body(config={"resolve": [{**RESOLVE, "x": 1}]}), ("config", "resolve", 0, "x")),
        (body(config={"proxy": {"protocol": "http", "host": "p", "x": 1}}), ("config", "proxy")),
        (body(config={"locationTrusted": {**CREDS, "x": 1}}), ("config", "locationTrusted")),
        # snake_case names are Python's, not the API's
        ({"http_request": body()["httpRequest"]}, ("http_request",)),
        (body(config={"execution_delay": 5}), ("config", "execution_delay")),
        (body({"auth_basic": CREDS}), ("httpRequest", "auth_basic")),
    ],
)
def test_unknown_fields_are_refused_at_every_level(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    assert "Extra inputs are not permitted" in refused(data, loc)


def test_unknown_aws_sigv4_field_refused() -> None:
    aws = {"provider1": "aws", "provider2": "amz", "region": "eu", "service": "s3"}
    data = body({"authAwsSigv4": {**aws, "key": "k", "secret": "s", "x": 1}})
    assert "Extra inputs" in refused(data, ("httpRequest", "authAwsSigv4", "x"))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"retry": "5"}, "retry"),
        ({"retry": True}, "retry"),
        ({"retry": 1.0}, "retry"),
        ({"insecure": 1}, "insecure"),
        ({"insecure": "true"}, "insecure"),
        ({"ipVersion": "4"}, "ipVersion"),
        ({"userAgent": 12345678}, "userAgent"),
    ],
)
def test_types_are_not_coerced(config: dict[str, Any], field: str) -> None:
    refused(body(config=config), ("config", field))


@pytest.mark.parametrize("section", ["config", "httpRequest"])
def test_sections_must_be_objects(section: str) -> None:
    data = body()
    data[section] = None
    refused(data, (section,))


@pytest.mark.parametrize("name", ["credentials", "referrerPolicy", "mode"])
def test_browser_only_fetch_options_are_refused_by_name(name: str) -> None:
    message = refused(body({name: "include"}), ("httpRequest",))
    assert name in message
    assert "browser-only fetch option" in message


# --- httpRequest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://target.example/x",
        "HTTPS://target.example:8443/a/b?c=1&d=2",
        "https://[2001:db8::1]:8080/x",
        "https://user:pw@target.example",
        "https://t.example/" + "a" * (1024 - len("https://t.example/")),
        # SPEC §15.10: a bare host, or any path ending in "/" or "?", is a target.
        "https://target.example/",
        "http://127.0.0.1:8080/",
        "https://target.example/x/",
        "https://target.example/x?",
        "https://target.example?",
        # Host names libcurl is given IDNA-encoded, and the longest names DNS allows.
        "https://bücher.test/x",
        "https://ÉXAMPLE.test/x",
        "https://" + "a" * 63 + ".test/x",
        "https://" + ".".join(["a" * 61] * 4) + "/x",  # 247 characters
        "https://svc_internal/x",
        "https://[::ffff:127.0.0.1]/x",
        "http://127.1/x",
    ],
)
def test_url_accepted(url: str) -> None:
    assert valid({"url": url}).http_request.url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://target.example/x", "absolute http or https URL"),
        ("target.example/x", "absolute http or https URL"),
        ("https:///x", "absolute http or https URL"),
        ("https://target.example:99999/x", "absolute http or https URL"),
        ("https://target.example:0/x", "absolute http or https URL"),
        ("https://[::1/x", "absolute http or https URL"),
        ("https://target.example/a b", "spaces or control characters"),
        ("https://target.example/a\nb", "spaces or control characters"),
        ("https://t.example/" + "a" * 1024, "at most 1024 characters"),
    ],
)
def test_url_refused(url: str, message: str) -> None:
    assert message in refused(body({"url": url}), ("httpRequest", "url"))


BAD_HOSTS = [
    # SPEC §15.1: what libcurl cannot be given, or would reach by another spelling.
    ("a..é", "not a valid host name"),  # an empty label
    ("é." + "a" * 64, "not a valid host name"),  # a label over 63 characters, IDNA
    ("a" * 64 + ".test", "not a valid host name"),  # the same, ASCII
    ("a..b", "not a valid host name"),
    (".".join(["a" * 63] * 4), "not a valid host name"),  # over 253 characters
    ("a!é.test", "not a valid host name"),  # IDNA lets "!" through; DNS does not
    ("%65xample.test", "not a valid host name"),
    ("169.254.169.254.", "trailing dot"),
    ("127.0.0.1.", "trailing dot"),
    ("target.example.", "trailing dot"),
    ("target.example。", "trailing dot"),  # an ideographic full stop: IDNA reads it as "."
]


@pytest.mark.parametrize(("host", "message"), BAD_HOSTS)
def test_bad_hosts_refused_in_every_url(host: str, message: str) -> None:
    """httpRequest.url, callback URLs, refererUrl and dohUrl share one host rule."""
    url = f"https://{host}:8443/x"
    assert message in refused(body({"url": url}), ("httpRequest", "url"))
    for name in ("callback", "failureCallback"):
        config = {name: {"url": url}}
        assert message in refused(body(config=config), ("config", name, "url"))
    for name in ("refererUrl", "dohUrl"):
        assert message in refused(body(config={name: url}), ("config", name))


@pytest.mark.parametrize(("host", "message"), BAD_HOSTS)
def test_bad_hosts_refused_as_proxy_and_resolve_hosts(host: str, message: str) -> None:
    proxy = {"protocol": "http", "host": host}
    assert message in refused(body(config={"proxy": proxy}), ("config", "proxy", "host"))
    resolve = [{**RESOLVE, "host": host}]
    assert message in refused(body(config={"resolve": resolve}), ("config", "resolve", 0, "host"))


def test_proxy_and_resolve_hosts_are_kept_as_libcurl_gets_them() -> None:
    """A host field holds no URL to encode later: an IDN is stored IDNA-encoded."""
    config = valid(
        config={
            "proxy": {"protocol": "http", "host": "Bücher.test"},
            "resolve": [{**RESOLVE, "host": "bücher.test"}],
        }
    ).config
    assert config.proxy is not None and config.proxy.host == "xn--bcher-kva.test"
    assert config.resolve is not None and config.resolve[0].host == "xn--bcher-kva.test"


def test_stored_url_is_not_parsed_again() -> None:
    """A stored request was checked when registered and sealed since: each attempt opens it
    without the URL parse (a third of its validation). Registration still refuses."""
    stored = {"check_future": False, "stored": True}
    url = "ftp://target.example/x"  # refused at registration (see test_url_refused)
    reg = QueueRegistration.model_validate(body({"url": url}), context=stored)
    assert reg.http_request.url == url
    with pytest.raises(ValidationError):
        QueueRegistration.model_validate(body({"url": url}), context={"check_future": False})


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods_are_case_insensitive_and_stored_upper(method: str) -> None:
    assert valid({"method": method.lower()}).http_request.method == method
    assert valid({"method": method.title()}).http_request.method == method


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "", 1, None])
def test_other_methods_refused(method: object) -> None:
    refused(body({"method": method}), ("httpRequest", "method"))


@pytest.mark.parametrize("field", ["query", "headers"])
def test_pairs_bounds(field: str) -> None:
    ok = {"k": "v", "a" * 64: "v" * 1024, "$_.-[]Az09": "x"}
    assert getattr(valid({field: ok}).http_request, field) == ok
    assert valid({field: {}}).http_request.model_dump()[field] == {}
    assert getattr(valid({field: None}).http_request, field) is None
    for bad in ({"a" * 65: "v"}, {"": "v"}, {"a b": "v"}, {"a:b": "v"}):
        refused(body({field: bad}), ("httpRequest", field))
    for bad_value in ("", "v" * 1025, 5, None):
        refused(body({field: {"k": bad_value}}), ("httpRequest", field, "k"))
    refused(body({field: ["k", "v"]}), ("httpRequest", field))


# Line breaks, and what some parsers read as one (VT, FF, NEL, U+2028/9), or other controls.
CONTROLS = ["\r\nX-Evil: 1", "\n", "\r", "\0", "\x0b", "\x0c", "\x1f", "\x7f"]
CONTROLS += ["\x85", "\x9b", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", CONTROLS, ids=repr)
def test_header_values_refuse_control_characters(char: str) -> None:
    """SPEC §15.8, in every header an owner sets and in the values sent as headers."""
    value = f"a{char}b"
    for where, data in [
        (("httpRequest", "headers", "X"), body({"headers": {"X": value}})),
        (("config", "proxyHeaders", "X"), body(config={"proxyHeaders": {"X": value}})),
        (
            ("config", "callback", "headers", "X"),
            body(config={"callback": {"url": URL, "headers": {"X": value}}}),
        ),
        (("config", "userAgent"), body(config={"userAgent": f"agent/1.0{value}"})),
        (
            ("httpRequest", "cookie", "list", 0, "value"),
            body({"cookie": [{"name": "c", "value": value}]}),
        ),
    ]:
        assert "control characters" in refused(data, where), where


def test_header_values_keep_tabs_and_other_text() -> None:
    headers = {"X-Tab": "a\tb", "X-Text": "ünï ©\u00a0€"}
    assert valid({"headers": headers}).http_request.headers == headers


def test_blank_header_values_are_dropped_everywhere() -> None:
    """The original accepted a value of spaces and tabs, and its curl never sent it (curl
    sends no header with an empty value): the header is dropped, visibly, at registration."""
    blank = {"X-Blank": " \t ", "X-Space": " ", "X-Keep": " v "}
    reg = valid(
        {"headers": blank},
        config={"proxyHeaders": blank, "callback": {"url": URL, "headers": blank}},
    )
    assert reg.http_request.headers == {"X-Keep": " v "}
    assert reg.config.proxy_headers == {"X-Keep": " v "}
    assert reg.config.callback is not None
    assert reg.config.callback.headers == {"X-Keep": " v "}
    refused(body({"headers": {"X": ""}}), ("httpRequest", "headers", "X"))  # empty: as before


def test_user_agent_header_is_dropped_case_insensitively() -> None:
    headers = {"User-Agent": "a", "user-agent": "b", "X-Keep": "c"}
    assert valid({"headers": headers}).http_request.headers == {"X-Keep": "c"}


FRAMING = [
    "Content-Length",
    "transfer-encoding",
    "CONNECTION",
    "Keep-Alive",
    "Upgrade",
    "TE",
    "Trailer",
    "Host",
]
FRAMING += ["Expect", "Proxy-Authorization", "proxy-connection"]


FRAMING += [  # SPEC §15.8: proxies that read "_" as "-" see these as the above
    "Content_Length",
    "Transfer_Encoding",
    "TRANSFER_encoding",
    "Keep_Alive",
    "Proxy_Authorization",
    "Proxy_Connection",
]


@pytest.mark.parametrize("name", FRAMING)
def test_framing_and_connection_headers_are_refused(name: str) -> None:
    message = refused(body({"headers": {name: "0"}}), ("httpRequest", "headers"))
    assert repr(name) in message and "framing" in message
    callback = {"url": URL, "headers": {name: "0"}}
    message = refused(body(config={"callback": callback}), ("config", "callback", "headers"))
    assert repr(name) in message and "framing" in message
    if not name.lower().startswith("proxy"):
        message = refused(body(config={"proxyHeaders": {name: "0"}}), ("config", "proxyHeaders"))
        assert repr(name) in message and "framing" in message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Webhook_Signature": "v1,x"}, "the server signs requests"),
        ({"x_tasks_callback": "success"}, "the server sets it on callbacks"),
    ],
)
def test_server_headers_are_refused_in_any_spelling(headers: dict[str, str], message: str) -> None:
    assert message in refused(body({"headers": headers}), ("httpRequest", "headers"))


def test_user_agent_in_any_spelling_is_dropped() -> None:
    headers = {"User_Agent": "a", "X-Keep": "c"}
    assert valid({"headers": headers}).http_request.headers == {"X-Keep": "c"}


def test_callback_content_type_in_any_spelling_is_refused() -> None:
    callback = {"url": URL, "headers": {"Content_Type": "text/plain"}}
    message = refused(body(config={"callback": callback}), ("config", "callback", "headers"))
    assert "the outcome is JSON" in message


def test_proxy_headers_refuse_framing_but_keep_proxy_credentials() -> None:
    message = refused(body(config={"proxyHeaders": {"Content-Length": "5"}}), ("config",))
    assert "'Content-Length'" in message
    reg = valid(config={"proxyHeaders": {"Proxy-Authorization": "Basic eA=="}})
    assert reg.config.proxy_headers == {"Proxy-Authorization": "Basic eA=="}
    reg = valid(config={"proxyHeaders": {"Proxy_Authorization": "Basic eA=="}})
    assert reg.config.proxy_headers == {"Proxy_Authorization": "Basic eA=="}


@pytest.mark.parametrize("data", ["x", "x" * 4096])
def test_text_data(data: str) -> None:
    assert valid({"data": data}).http_request.data == data


@pytest.mark.parametrize("data", ["", "x" * 4097])
def test_text_data_bounds(data: str) -> None:
    refused(body({"data": data}), ("httpRequest", "data", "text"))


def test_form_data_bounds() -> None:
    field = {"name": "f", "value": "v"}
    assert len(valid({"data": [field] * 64}).http_request.data) == 64  # type: ignore[arg-type]
    assert valid({"data": [{"name": "f", "value": ""}]}).http_request.data is not None
    for bad in ([], [field] * 65):
        refused(body({"data": bad}), ("httpRequest", "data", "list"))
    for item, loc in (
        ({"name": "bad name", "value": "v"}, "name"),
        ({"name": "a" * 65, "value": "v"}, "name"),
        ({"name": "f", "value": "v" * 4097}, "value"),
        ({"name": "f"}, "value"),
    ):
        refused(body({"data": [item]}), ("httpRequest", "data", "list", 0, loc))


def test_json_data_accepted() -> None:
    data = {
        "s": "x" * 4096,
        "empty": "",
        "i": 1,
        "f": 1.5,
        "b": False,
        "n": None,
        "l1": {"l2": {"l3": 1, "$_.-[]": "ok"}},
    }
    assert valid({"data": data}).http_request.data == data
    assert valid({"data": {}}).http_request.data == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"l1": {"l2": {"l3": {"l4": 1}}}}, "'l1.l2.l3': objects nest at most 3 levels deep"),
        ({"a": {"bad key": 1}}, "key 'a.bad key' must match"),
        ({"a" * 65: 1}, "must match"),
        ({"s": "x" * 4097}, "'s': strings are at most 4096 characters"),
        ({"a": [1, 2]}, "'a': values are strings, numbers, booleans, null or objects"),
        ({"a": float("inf")}, "'a': numbers must be finite"),
        ({"a": float("nan")}, "'a': numbers must be finite"),
    ],
)
def test_json_data_refused(data: dict[str, Any], message: str) -> None:
    assert message in refused(body({"data": data}), ("httpRequest", "data", "object"))


@pytest.mark.parametrize("data", [5, True, 1.5])
def test_data_of_another_type_refused(data: object) -> None:
    message = refused(body({"data": data}), ("httpRequest", "data"))
    assert message == "must be a string, a list of {name, value} or a JSON object"


@pytest.mark.parametrize(("method", "kept"), [("GET", False), ("DELETE", False), ("PUT", True)])
def test_data_dropped_for_get_and_delete(method: str, kept: bool) -> None:
    reg = valid({"method": method, "data": {"a": 1}})
    assert (reg.http_request.data is not None) is kept
    assert ("data" in reg.model_dump(by_alias=True, exclude_none=True)["httpRequest"]) is kept


def test_invalid_data_is_refused_even_for_get() -> None:
    refused(body({"method": "GET", "data": ""}), ("httpRequest", "data"))


def test_cookie_list_bounds() -> None:
    cookie = {"name": "sid", "value": "abc"}
    assert len(valid({"cookie": [cookie] * 16}).http_request.cookie) == 16  # type: ignore[arg-type]
    assert valid({"cookie": [{"name": "sid", "value": ""}]}).http_request.cookie
    for bad in ([], [cookie] * 17):
        refused(body({"cookie": bad}), ("httpRequest", "cookie", "list"))
    for item in (
        {"name": "sid", "value": "a;b"},
        {"name": "sid", "value": "a\r\nb"},
        {"name": "sid", "value": "v" * 4097},
        {"name": "s id", "value": "v"},
        {"name": "sid"},
    ):
        refused(body({"cookie": [item]}), ("httpRequest", "cookie", "list", 0))


def test_cookie_file_is_base64_and_normalised() -> None:
    text = base64.b64encode(b"# Netscape HTTP Cookie File\n" * 10).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert valid({"cookie": wrapped}).http_request.cookie == text
    assert "must be base64" in refused(body({"cookie": "not base64!"}), ("httpRequest", "cookie"))
    assert "must not be empty" in refused(body({"cookie": ""}), ("httpRequest", "cookie"))


def test_cookie_of_another_type_refused() -> None:
    message = refused(body({"cookie": {"sid": "x"}}), ("httpRequest", "cookie"))
    assert message == "must be a list of {name, value} or the base64 of a cookie file"


@pytest.mark.parametrize("field", ["authBasic", "authDigest", "authNtlm"])
def test_auth_credentials_bounds(field: str) -> None:
    ok = {"username": "u" * 64, "password": "p" * 256}
    assert valid({field: ok}).model_dump(by_alias=True)["httpRequest"][field] == ok
    assert valid({field: {"username": "u", "password": "p"}})
    for bad, loc in (
        ({"username": "", "password": "p"}, "username"),
        ({"username": "u" * 65, "password": "p"}, "username"),
        ({"username": "u", "password": ""}, "password"),
        ({"username": "u", "password": "p" * 257}, "password"),
        ({"username": "u"}, "password"),
    ):
        refused(body({field: bad}), ("httpRequest", field, loc))


def test_aws_sigv4_bounds() -> None:
    aws = {
        "provider1": "aws",
        "provider2": "amz",
        "region": "eu-west-1",
        "service": "s3",
        "key": "k" * 256,
        "secret": "s" * 256,
    }
    assert valid({"authAwsSigv4": aws}).http_request.auth_aws_sigv4 is not None
    for name, bad in (
        ("provider1", "a:b"),
        ("provider2", ""),
        ("region", "r" * 65),
        ("service", "s 3"),
        ("key", ""),
        ("key", "k" * 257),
        ("secret", ""),
        ("secret", "s" * 257),
    ):
        refused(body({"authAwsSigv4": {**aws, name: bad}}), ("httpRequest", "authAwsSigv4", name))
    missing = {k: v for k, v in aws.items() if k != "secret"}
    refused(body({"authAwsSigv4": missing}), ("httpRequest", "authAwsSigv4", "secret"))


@pytest.mark.parametrize("transport", ["curl", "fetch", None])
def test_transport_accepted(transport: str | None) -> None:
    assert valid({"transport": transport}).http_request.transport == transport


def test_transport_refused() -> None:
    refused(body({"transport": "xhr"}), ("httpRequest", "transport"))


# --- metadata -----------------------------------------------------------------------------


def test_metadata_bounds() -> None:
    eight = {f"k{i}": "v" * 512 for i in range(8)}
    assert valid(metadata=eight).metadata == eight
    assert valid(metadata={"a" * 64: "v"}).metadata == {"a" * 64: "v"}
    assert valid(metadata=None).metadata is None
    for bad in ({}, {f"k{i}": "v" for i in range(9)}):
        refused(body(metadata=bad), ("metadata",))
    for bad in ({"k": ""}, {"k": "v" * 513}, {"k": 1}, {"bad key": "v"}):
        refused(body(metadata=bad), ("metadata",))


# --- config: every field's bounds ---------------------------------------------------------

BOOLEANS = [
    "executeImmediately",
    "retryExponential",
    "retryJitter",
    "sessionId",
    "insecure",
    "traceResponseData",
    "location",
    "dohInsecure",
    "proxyInsecure",
    "haProxyProtocol",
]
CALLBACKS = [
    {"url": "https://hooks.example/done"},
    {"url": "https://hooks.example/"},
    {"url": "http://10.0.0.1:8080/done?x=1", "headers": {"Authorization": "Bearer t"}},
    None,
]
BAD_CALLBACKS = [
    {},
    {"url": "ftp://hooks.example/done"},
    {"url": "https://hooks.example./done"},
    {"url": "https://hooks.example/done", "method": "GET"},
    {"url": "https://hooks.example/done", "headers": {"Host": "other.example"}},
    {"url": "https://hooks.example/done", "headers": {"Webhook-Signature": "v1,x"}},
    {"url": "https://hooks.example/done", "headers": {"X-Tasks-Callback": "success"}},
    {"url": "https://hooks.example/done", "headers": {"Content-Type": "text/plain"}},
    {"url": "https://hooks.example/done", "headers": {"k": "a\nb"}},
    "https://hooks.example/done",
]
CREDENTIALS = ["locationTrusted", "proxyAuthBasic", "proxyAuthDigest", "proxyAuthNtlm"]
BAD_CREDENTIALS = [
    {"username": "", "password": "p"},
    {"username": "u" * 65, "password": "p"},
    {"username": "u", "password": ""},
    {"username": "u", "password": "p" * 257},
    {"username": "u"},
    "u:p",
]

CONFIG_CASES: list[tuple[str, list[Any], list[Any]]] = [
    ("executionDelay", [0, MAX_DELAY_MS], [-1, MAX_DELAY_MS + 1, None]),
    ("retry", [0, 1000], [-1, 1001, None]),
    ("retryInterval", [1, MAX_DELAY_MS], [0, -1, MAX_DELAY_MS + 1]),
    ("retryBackoff", ["fixed", "linear", "exponential", None], ["quadratic", "FIXED"]),
    ("retryMaxInterval", [1, MAX_DELAY_MS, None], [0, MAX_DELAY_MS + 1]),
    ("ignoreStatusCode", [[], [400, 599], [404] * 40], [[399], [600], [404] * 41, None, "404"]),
    ("timeout", [1000, 3_600_000], [999, 3_600_001, None]),
    ("httpVersion", ["0.9", "1.0", "1.1", "2", "2-prior-knowledge"], ["3", "2.0", 1.1]),
    ("userAgent", ["u" * 8, "u" * 256], ["u" * 7, "u" * 257, "agent/1.0\r\nX: y", None]),
    ("ipVersion", [4, 6], [5, 0]),
    (
        "refererUrl",
        ["AUTO", "https://from.example/page", "http://from.example"],
        ["ftp://from.example", "not a url", "https://r.example/" + "a" * 1024],
    ),
    ("keepAliveDuration", [0, 259_200], [-1, 259_201]),
    ("hsts", [True, False, B64, None], ["not base64!", "", 5]),
    ("ca", [B64, "/certs/ca.pem", None], ["", 5]),
    ("key", [B64, "client.key", None], ["", 5]),
    (
        "cert",
        [{"value": B64}, {"value": "/certs/c.pem", "password": "p" * 256}, None],
        [{}, {"value": ""}, {"value": "c", "password": ""}, {"value": "c", "password": "p" * 257}],
    ),
    ("certType", ["PEM", "DER", "ENG", "P12"], ["pem", "P7"]),
    ("keyType", ["PEM", "DER", "ENG"], ["P12"]),
    ("certStatus", [True, False, None], ["yes"]),
    ("redirectAttempts", [0, 32], [-1, 33]),
    ("proto", ["http", "https", None], ["ftp", "HTTP"]),
    ("protoRedirect", ["http", "https", None], ["ftp"]),
    (
        "dnsServer",
        [["1.1.1.1"], ["1.1.1.1", "2001:db8::1", "8.8.8.8", "9.9.9.9"], None],
        [[], ["1.1.1.1"] * 5, ["dns.example"], ["256.0.0.1"], "1.1.1.1"],
    ),
    (
        "resolve",
        [
            [RESOLVE],
            [RESOLVE] * 4,
            [{"host": "a.example", "port": 1, "address": ["::1"] * 4}],
            [{"host": "a.example", "port": 65535, "address": ["10.0.0.1"]}],
            [{"host": "svc_internal", "port": 80, "address": ["10.0.0.1"]}],
        ],
        [
            [],
            [RESOLVE] * 5,
            [{**RESOLVE, "port": 22}],
            [{**RESOLVE, "port": 0}],
            [{**RESOLVE, "port": 65536}],
            [{**RESOLVE, "address": []}],
            [{**RESOLVE, "address": ["10.0.0.1"] * 5}],
            [{**RESOLVE, "address": ["target.example"]}],
            [{**RESOLVE, "host": "a host"}],
            [{**RESOLVE, "host": "a:1"}],
            [{"host": "a.example", "port": 443}],
        ],
    ),
    ("dohUrl", ["https://doh.example/dns-query", None], ["http://doh.example/dns-query", "x"]),
    ("tlsVersion", ["1.0", "1.1", "1.2", "1.3", None], ["1.4", 1.2]),
    ("tlsMaxVersion", ["1.0", "1.3", None], ["SSLv3"]),
    (
        "proxy",
        [
            {"protocol": "http", "host": "proxy.local"},
            {"protocol": "https", "host": "10.0.0.1", "port": 3128},
            {"protocol": "http", "host": "2001:db8::2", "port": 65535},
        ],
        [
            {"protocol": "socks5", "host": "proxy.local"},
            {"protocol": "http", "host": "bad host"},
            {"protocol": "http", "host": "proxy.local", "port": 0},
            {"protocol": "http", "host": "proxy.local", "port": 65536},
            {"protocol": "http"},
            "http://proxy.local:3128",
        ],
    ),
    ("proxyHeaders", [{"X-A": "b"}, {}, None], [{"bad key": "v"}, {"k": ""}, {"k": "a\nb"}]),
    ("proxyHttpVersion", ["1.0", "1.1", None], ["2", "1"]),
    ("haProxyClientIp", ["203.0.113.7", "2001:db8::1", None], ["nope", "256.1.1.1", ""]),
    (
        "flowControl",
        [
            {"key": "k", "parallelism": 1},
            {"key": "k" * 64, "ratePerSecond": 0.5},
            {"key": "api.example", "parallelism": 10_000, "ratePerSecond": 10_000},
            None,
        ],
        [
            {"key": "k"},
            {"key": "", "parallelism": 1},
            {"key": "k" * 65, "parallelism": 1},
            {"key": "a\nb", "parallelism": 1},
            {"key": "k", "parallelism": 0},
            {"key": "k", "parallelism": 10_001},
            {"key": "k", "parallelism": 1.5},
            {"key": "k", "ratePerSecond": 0},
            {"key": "k", "ratePerSecond": "5"},
            {"key": "k", "ratePerSecond": float("inf")},
            {"key": "k", "parallelism": 1, "burst": 3},
            {"parallelism": 1},
            "k",
        ],
    ),
    *((name, [True, False], ["true", 1, None]) for name in BOOLEANS),
    *((name, [CREDS, None], BAD_CREDENTIALS) for name in CREDENTIALS),
    *((name, CALLBACKS, BAD_CALLBACKS) for name in ("callback", "failureCallback")),
    ("maxLateness", [1, MAX_DELAY_MS, None], [0, -1, MAX_DELAY_MS + 1, 1.5, "1m"]),
    ("circuitBreaker", [True, False], ["false", 0, None]),
]


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, ok, _ in CONFIG_CASES for v in ok], ids=repr
)
def test_config_value_accepted(field: str, value: Any) -> None:
    assert field in valid(config={field: value}).model_dump(mode="json", by_alias=True)["config"]


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, _, bad in CONFIG_CASES for v in bad], ids=repr
)
def test_config_value_refused(field: str, value: Any) -> None:
    refused(body(config={field: value}), ("config", field))


def test_every_config_field_is_covered() -> None:
    tested = {f for f, _, _ in CONFIG_CASES} | {"executeAt", "retryAt", "timeoutAt"}
    assert tested == {f.alias for f in QueueConfig.model_fields.values()}


def test_normalisations() -> None:
    config = valid(
        config={
            "dnsServer": ["2001:0db8:0000::0001"],
            "haProxyClientIp": "::ffff:0:1",
            "proxy": {"protocol": "http", "host": "2001:DB8::2"},
            "refererUrl": "auto",
            "hsts": B64[:8] + "\n" + B64[8:],
        }
    ).config
    assert config.dns_server == ["2001:db8::1"]
    assert config.ha_proxy_client_ip == "::ffff:0:1"
    assert config.proxy is not None and config.proxy.host == "2001:db8::2"
    assert config.referer_url == "AUTO"
    assert config.hsts == B64


# --- config: timing and cross-field rules -------------------------------------------------


def test_execute_at_must_be_in_the_future() -> None:
    for past in (NOW, NOW - 1, 0):
        message = refused(body(config={"executeAt": past}), ("config", "executeAt"))
        assert "must be in the future" in message
    config = valid(config={"executeAt": NOW + 1, "executionDelay": 5000}).config
    assert (config.execute_at, config.execution_delay) == (NOW + 1, 0)


def test_execute_at_past_accepted_without_check_future() -> None:
    context = {**CTX, "check_future": False}
    reg = QueueRegistration.model_validate(body(config={"executeAt": 5}), context=context)
    assert reg.config.execute_at == 5


def test_execute_at_strings_use_tz_from_context() -> None:
    bangkok = ZoneInfo("Asia/Bangkok")
    expected = int(datetime(2030, 1, 1, 8, 30, tzinfo=bangkok).timestamp() * 1000)
    context = {**CTX, "tz": "Asia/Bangkok"}
    data = body(config={"executeAt": "2030-01-01 08:30"})
    assert QueueRegistration.model_validate(data, context=context).config.execute_at == expected
    utc = QueueRegistration.model_validate(data, context=CTX).config.execute_at
    assert utc == expected + 7 * 3_600_000
    assert valid(config={"executeAt": "Dec 12 2099 12:12:12 AM +07:00"}).config.execute_at
    assert valid(config={"executeAt": str(NOW + 10)}).config.execute_at == NOW + 10


@pytest.mark.parametrize("field", ["executeAt", "retryAt", "timeoutAt"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow-ish", "is not a date"),
        (True, "expected epoch milliseconds"),
        (1.5e12, "expected epoch milliseconds"),
        ([NOW], "expected epoch milliseconds"),
        (-5, "outside 1970-01-01"),
    ],
)
def test_instants_refused(field: str, value: object, message: str) -> None:
    assert message in refused(body(config={field: value}), ("config", field))


def test_context_defaults_to_the_clock_utc_and_future_check() -> None:
    data = body(config={"executeAt": "2999-01-01T00:00:00", "retryAt": "2999-01-01T00:00:01"})
    config = QueueRegistration.model_validate(data).config
    assert config.execute_at == 32_472_144_000_000
    with pytest.raises(ValidationError, match="must be in the future"):
        QueueRegistration.model_validate(body(config={"executeAt": NOW}))


@pytest.mark.parametrize("field", ["retryAt", "timeoutAt"])
def test_at_least_one_second_after_the_execution_time(field: str) -> None:
    # execution time = now + executionDelay
    ok = valid(config={"executionDelay": 500, field: NOW + 1500}).config
    assert ok.model_dump(by_alias=True)[field] == NOW + 1500
    message = refused(body(config={"executionDelay": 500, field: NOW + 1499}), ("config", field))
    assert "must be at least 1000 ms after the execution time" in message
    # execution time = executeAt (executionDelay ignored)
    start = NOW + 60_000
    assert valid(config={"executeAt": start, "executionDelay": 10**9, field: start + 1000})
    refused(body(config={"executeAt": start, field: start + 999}), ("config", field))


def test_timing_errors_do_not_cascade() -> None:
    errs = errors(body(config={"executeAt": "nope", "retryAt": NOW, "timeoutAt": NOW}))
    assert [e["loc"] for e in errs] == [("config", "executeAt")]
    errs = errors(body(config={"executionDelay": -1, "retryAt": NOW}))
    assert [e["loc"] for e in errs] == [("config", "executionDelay")]


def test_retry_at_means_exactly_one_retry() -> None:
    config = valid(config={"retry": 9, "retryExponential": True, "retryAt": NOW + 5000}).config
    assert (config.retry, config.retry_exponential, config.retry_at) == (1, False, NOW + 5000)


@pytest.mark.parametrize(("retry", "exponential"), [(0, False), (1, False), (2, True)])
def test_retry_exponential_forced_false_when_retry_at_most_one(
    retry: int, exponential: bool
) -> None:
    config = valid(config={"retry": retry, "retryExponential": True}).config
    assert config.retry_exponential is exponential


def test_retry_max_interval_not_below_retry_interval() -> None:
    assert valid(config={"retryInterval": 100, "retryMaxInterval": 100})
    message = refused(body(config={"retryInterval": 100, "retryMaxInterval": 99}), ("config",))
    assert "retryMaxInterval must not be below retryInterval" in message


def test_tls_version_not_above_tls_max_version() -> None:
    assert valid(config={"tlsVersion": "1.2", "tlsMaxVersion": "1.2"})
    assert valid(config={"tlsVersion": "1.2"})
    message = refused(body(config={"tlsVersion": "1.3", "tlsMaxVersion": "1.2"}), ("config",))
    assert "tlsVersion must not be above tlsMaxVersion" in message


def test_execution_time() -> None:
    assert execution_time(valid(), NOW) == NOW + 1
    assert execution_time(valid(config={"executionDelay": 0}), NOW + 7) == NOW + 7
    assert execution_time(valid(config={"executeAt": NOW + 99}), NOW + 50) == NOW + 99


# --- round trip and redaction -------------------------------------------------------------


def full_body() -> dict[str, Any]:
    return body(
        {
            "url": "https://bob:hunter2@target.example/hook?sig=url-secret&flag&page=2",
            "method": "patch",
            "query": {"page": "1", "access_token": "tok"},
            "headers": {
                "Authorization": "Bearer abc",
                "X-Plain": "yes",
                "User-Agent": "x",
                "X-Credential": "cred-secret",
                "X-Api-Key": "api-secret",
                "X-Webhook-Signature": "sig-secret",
                "Set-Cookie-ish": "c",
                "X-Passphrase": "phrase-secret",
            },
            "data": {"a": {"b": {"c": None}}, "n": 1.25},
            "cookie": [{"name": "sid", "value": "cookie-secret"}],
            "authBasic": CREDS,
            "authDigest": CREDS,
            "authNtlm": CREDS,
            "authAwsSigv4": {
                "provider1": "aws",
                "provider2": "amz",
                "region": "eu-west-1",
                "service": "s3",
                "key": "AKIA",
                "secret": "aws-secret",
            },
            "transport": "fetch",
        },
        config={
            "executeAt": "2099-01-01T00:00:00Z",
            "executeImmediately": True,
            "retry": 4,
            "retryInterval": 1000,
            "retryBackoff": "exponential",
            "retryMaxInterval": 60_000,
            "ignoreStatusCode": [404, 503],
            "timeout": 5000,
            "timeoutAt": "2099-01-01T00:00:10Z",
            "httpVersion": "2",
            "userAgent": "my-agent/2.0",
            "ipVersion": 6,
            "refererUrl": "https://ref-token@from.example/page?from=ref-secret",
            "keepAliveDuration": 0,
            "hsts": B64,
            "sessionId": False,
            "insecure": True,
            "traceResponseData": False,
            "ca": B64,
            "cert": {"value": B64, "password": "cert-pass"},
            "certType": "P12",
            "keyType": "DER",
            "certStatus": True,
            "key": "/certs/client.key",
            "location": False,
            "redirectAttempts": 0,
            "locationTrusted": CREDS,
            "proto": "https",
            "protoRedirect": "https",
            "dnsServer": ["1.1.1.1"],
            "resolve": [RESOLVE],
            "dohUrl": "https://doh.example/dns-query",
            "dohInsecure": True,
            "tlsVersion": "1.2",
            "tlsMaxVersion": "1.3",
            "proxy": {"protocol": "https", "host": "proxy.local", "port": 3128},
            "proxyHeaders": {"Proxy-Authorization": "Basic xyz", "X-Via": "me", "X-Token": "t"},
            "proxyInsecure": True,
            "proxyHttpVersion": "1.0",
            "proxyAuthBasic": CREDS,
            "proxyAuthDigest": CREDS,
            "proxyAuthNtlm": CREDS,
            "haProxyClientIp": "203.0.113.9",
            "haProxyProtocol": True,
        },
        metadata={"customer": "42"},
    )


@pytest.mark.parametrize(
    "data",
    [
        full_body(),
        body(),
        body({"method": "GET", "data": "dropped", "cookie": B64}),
        body({"data": [{"name": "f", "value": "v"}]}, config={"retryAt": NOW + 2000, "hsts": True}),
        body({"data": "plain text"}, config={"executionDelay": 0, "retry": 3}),
        body({"url": "https://bücher.test/", "headers": {"X-Blank": " ", "X-Tab": "a\tb"}}),
    ],
)
def test_json_dump_validates_again_to_an_equal_model(data: dict[str, Any]) -> None:
    reg = QueueRegistration.model_validate(data, context=CTX)
    dumped = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
    again = QueueRegistration.model_validate(dumped, context={**CTX, "check_future": False})
    assert again == reg
    assert again.model_dump(mode="json", by_alias=True, exclude_none=True) == dumped


def test_redact_hides_every_secret_and_keeps_the_rest() -> None:
    reg = QueueRegistration.model_validate(full_body(), context=CTX)
    dumped = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
    original = copy.deepcopy(dumped)
    out = redact(dumped)
    assert dumped == original  # a copy, the input is untouched
    request, config = out["httpRequest"], out["config"]
    assert request["url"] == "https://bob:***@target.example/hook?sig=***&***&page=***"
    assert request["query"] == {"page": "***", "access_token": "***"}
    assert request["headers"] == {
        "Authorization": "***",
        "X-Plain": "yes",
        "X-Credential": "***",
        "X-Api-Key": "***",
        "X-Webhook-Signature": "***",
        "Set-Cookie-ish": "***",
        "X-Passphrase": "***",
    }
    assert request["cookie"] == [{"name": "sid", "value": "***"}]
    for name in ("authBasic", "authDigest", "authNtlm"):
        assert request[name] == {"username": "alice", "password": "***"}
    assert request["authAwsSigv4"] == {
        "provider1": "aws",
        "provider2": "amz",
        "region": "eu-west-1",
        "service": "s3",
        "key": "***",
        "secret": "***",
    }
    assert request["data"] == original["httpRequest"]["data"]
    for name in ("locationTrusted", "proxyAuthBasic", "proxyAuthDigest", "proxyAuthNtlm"):
        assert config[name] == {"username": "alice", "password": "***"}
    assert (config["ca"], config["key"], config["hsts"]) == ("***", "***", "***")
    assert config["cert"] == {"value": "***", "password": "***"}
    assert config["proxyHeaders"] == {"Proxy-Authorization": "***", "X-Via": "me", "X-Token": "***"}
    assert config["refererUrl"] == "https://***@from.example/page?from=***"
    assert config["dohUrl"] == "https://doh.example/dns-query"
    assert config["proxy"] == {"protocol": "https", "host": "proxy.local", "port": 3128}
    assert out["metadata"] == {"customer": "42"}
    secrets = (
        *("s3cret", "aws-secret", "AKIA", "cookie-secret", "cert-pass", B64, "hunter2"),
        *("url-secret", "cred-secret", "api-secret", "sig-secret", "phrase-secret"),
        *("ref-token", "ref-secret"),
    )
    assert not any(secret in repr(out) for secret in secrets)


def test_redact_cookie_file_and_hsts_flag() -> None:
    dumped = valid({"cookie": B64}, config={"hsts": True, "cert": {"value": "c.pem"}}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    out = redact(dumped)
    assert out["httpRequest"]["cookie"] == "***"
    assert out["config"]["hsts"] is True
    assert out["config"]["cert"] == {"value": "***"}
    assert out["httpRequest"]["url"] == URL


def test_redact_tolerates_partial_dumps() -> None:
    assert redact({}) == {}
    assert redact({"httpRequest": {"url": URL}}) == {"httpRequest": {"url": URL}}


# --- responses and list query -------------------------------------------------------------


def test_response_models_build_from_names_and_dump_camel_case() -> None:
    summary = QueueSummary(
        id="01HZX",
        state=QueueState.RUNNING,
        created_at=1,
        status_code=0,
        estimate_end_at=0,
        estimate_execution_at=2,
    )
    assert summary.model_dump(mode="json", by_alias=True) == {
        "id": "01HZX",
        "state": "RUNNING",
        "createdAt": 1,
        "statusCode": 0,
        "estimateEndAt": 0,
        "estimateExecutionAt": 2,
        "scheduleId": None,
        "batchId": None,
        "ref": None,
        "method": None,
        "target": None,
        "labels": None,
    }
    out = QueueOut(**summary.model_dump(), metadata={"k": "v"})
    assert out.model_dump(by_alias=True)["response"] is None
    assert out.model_dump(by_alias=True)["metadata"] == {"k": "v"}
    config = QueueConfigOut(
        http_request={"url": URL},
        config={},
        retry_count=1,
        retry_limit=3,
        retrying=True,
        estimate_next_retry_at=5,
    )
    assert set(config.model_dump(by_alias=True)) == {
        "httpRequest",
        "config",
        "metadata",
        "retryCount",
        "retryLimit",
        "retrying",
        "estimateNextRetryAt",
    }


def test_queue_states() -> None:
    assert [s.value for s in QueueState] == [
        "RUNNING",
        "PAUSED",
        "SUCCESS",
        "ERROR",
        "REVOKED",
        "WAITING",
    ]


@pytest.mark.parametrize(
    "model", [QueueRegistration, QueueSummary, QueueOut, QueueConfigOut, ListQuery]
)
def test_json_schema_generates(model: type) -> None:
    schema = model.model_json_schema()  # type: ignore[attr-defined]
    assert schema["type"] == "object"


def test_registration_schema_uses_camel_case_and_documents_instants() -> None:
    schema = QueueRegistration.model_json_schema()
    config = schema["$defs"]["QueueConfig"]["properties"]
    assert "executeAt" in config and "haProxyClientIp" in config
    assert {"type": "string"} in config["executeAt"]["anyOf"]
    assert schema["$defs"]["QueueConfig"]["additionalProperties"] is False


def test_list_query_defaults_and_coercion() -> None:
    assert ListQuery.model_validate({}).model_dump() == {
        "limit": 10,
        "offset": 0,
        "order": "createdAt",
        "sort": "asc",
        "state": None,
        "schedule_id": None,
        "batch_id": None,
    }
    query = ListQuery.model_validate(
        {
            "limit": "1000",
            "offset": "5",
            "order": "estimateEndAt",
            "sort": "desc",
            "state": "PAUSED",
        }
    )
    assert (query.limit, query.offset, query.state) == (1000, 5, QueueState.PAUSED)
    assert ListQuery.model_validate({"limit": "1", "order": "estimateExecutionAt"}).limit == 1


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"order": "id"}, "order"),
        ({"sort": "up"}, "sort"),
        ({"state": "DONE"}, "state"),
        ({"page": "2"}, "page"),
    ],
)
def test_list_query_refused(params: dict[str, str], loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        ListQuery.model_validate(params)
    assert [e["loc"] for e in info.value.errors()] == [(loc,)]


def test_stored_request_revalidates_later_without_clock_checks() -> None:
    from tasks_server.models.queues import QueueRegistration

    body = {
        "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
        "config": {"executionDelay": 1000, "retryAt": 10_000, "timeoutAt": 5000},
    }
    reg = QueueRegistration.model_validate(body, context={"now": 0})
    dumped = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
    later = QueueRegistration.model_validate(
        dumped, context={"now": 1_000_000, "check_future": False}
    )
    assert later == reg


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (body({"headers": {"X-Name\n": "v"}}), ("httpRequest", "headers")),
        (body({"query": {"page\n": "1"}}), ("httpRequest", "query")),
        (body({"data": {"field\n": 1}}), ("httpRequest", "data")),
        (body(metadata={"order\n": "42"}), ("metadata",)),
    ],
)
def test_names_are_matched_on_the_whole_string(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    """A trailing newline is not part of a valid name (Python's `$` would allow it)."""
    assert refused(data, loc)
