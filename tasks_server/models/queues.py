"""Task ("queue") registration (SPEC §2), its responses, and the list query.

Request models take camelCase keys only, refuse unknown keys and do not coerce types.
Validation reads three optional keys from the pydantic context::

    QueueRegistration.model_validate(body, context={"now": ms, "tz": "UTC", "check_future": True})

``now`` (epoch ms, default: the clock) anchors the execution time, ``tz`` (IANA zone, default
UTC) reads date strings without a zone, and ``check_future`` (default true) requires
``executeAt`` to be in the future; the server turns it off when it re-validates a stored
request. ``stored`` (default false) marks a document that is the server's own: a stored
request read back, or a callback request the server made. It lifts the client-facing length
limit of strings in a ``data`` object and allows the ``X-Tasks-Callback`` header.

Header rules hold for every header set an owner gives (``httpRequest.headers``,
``config.proxyHeaders``, callback headers): names are compared as a proxy may read them (any
case, ``_`` for ``-``), values carry no control character but HTAB, and a value of only spaces
and tabs drops its header. (The original accepted such a value and its curl never sent it;
dropping it here keeps ``/config`` true and stops libcurl reading it as "remove your own
header of that name".) Hosts pass ``ascii_host``, the one encoding the executor uses too.

The JSON dump (``mode="json", by_alias=True, exclude_none=True``) validates again to an equal
model.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tasks_server import timeutil
from tasks_server.models.labels import Labels

KEY_PATTERN = r"^[A-Za-z0-9$_.\-\[\]]{1,64}$"
DEFAULT_USER_AGENT = "Tasks-Server/1.0 (compatible; Linux x86_64; +http://tasks-server)"
MAX_DELAY_MS = 315_360_000_000  # 10 years: executionDelay, retryInterval, retryMaxInterval
MAX_RETRY = 1000
MAX_TIMEOUT_MS = 3_600_000
MIN_GAP_MS = 1000  # retryAt and timeoutAt come at least this long after the execution time
MAX_JSON_DEPTH = 3
MAX_DATA_STRING = 4096  # characters of a string in an httpRequest.data object
CALLBACK_HEADER = "X-Tasks-Callback"  # success or failure, on a callback's request
SECRET = "***"

_KEY = re.compile(KEY_PATTERN)
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")  # spaces and control characters
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))  # printable ASCII stays as given
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*"
)
# Besides CR and LF, some parsers end a line at VT, FF, NEL or U+2028/9 (SPEC §15.8).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_BROWSER_ONLY = ("credentials", "referrerPolicy", "mode")
# Headers that define the request's framing or its connection belong to libcurl (SPEC §10.1):
# an owner setting one could desynchronise a kept-alive connection.
_FRAMING_HEADERS = frozenset(
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "host",
        "expect",
    ]
)
# Header and proxy-header names whose values are redacted from /config (query values all are).
_SENSITIVE_NAME = re.compile(
    r"auth|cookie|token|secret|key|pass|signature|session|credential", re.I
)


# --- field validators ---------------------------------------------------------------------


def _canonical(name: str) -> str:
    """A header name as a proxy may read it: nginx and others take ``_`` for ``-``."""
    return name.lower().replace("_", "-")


def _header_set(headers: dict[str, str] | None, *, proxy_allowed: bool) -> dict[str, str] | None:
    """Any header set an owner gives: framing names refused in any spelling, blank values
    dropped."""
    if headers is None:
        return None
    for name in headers:
        canonical = _canonical(name)
        if canonical in _FRAMING_HEADERS or (canonical.startswith("proxy-") and not proxy_allowed):
            raise ValueError(
                f"header {name!r} is not allowed: libcurl sets the framing and connection"
                " headers itself"
            )
    return {name: value for name, value in headers.items() if value.strip(" \t")}


def _request_headers(headers: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
    """An owner's request headers: no framing, no signature headers, no X-Tasks-Callback
    (it marks the server's callback requests; a stored one is the server's), and no
    User-Agent (config.userAgent is the one)."""
    headers = _header_set(headers, proxy_allowed=False)
    if headers is None:
        return None
    for name in headers:
        if _canonical(name).startswith("webhook-"):  # the signature headers of SPEC §10.5
            raise ValueError(f"header {name!r} is not allowed: the server signs requests")
        if _canonical(name) == CALLBACK_HEADER.lower() and not _stored(info):
            raise ValueError(f"header {name!r} is not allowed: the server sets it on callbacks")
    return {k: v for k, v in headers.items() if _canonical(k) != "user-agent"}


def _stored(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get("stored", False))


def _single_line(value: str) -> str:
    """Text sent in a header (or kept as a key): one line however a parser reads it."""
    if _CONTROL.search(value):
        raise ValueError("must not contain line breaks or other control characters but HTAB")
    return value


def ascii_host(host: str) -> str:
    """A host name as libcurl is given it (pycurl takes ASCII only): IDNA-encoded unless
    ASCII already. ValueError for a name DNS cannot hold (an empty label, one over 63
    characters, over 253 in all, anything but letters, digits, ``-`` and ``_``), and for a
    trailing dot, which spells a host the destination guard and the pool see as another."""
    try:
        name = host if host.isascii() else host.encode("idna").decode()
    except UnicodeError:
        name = ""
    if name.endswith("."):
        raise ValueError(f"host {host!r} has a trailing dot: give the name without it")
    if not _HOSTNAME.fullmatch(name):
        raise ValueError(
            f"{host!r} is not a valid host name: labels of 1 to 63 letters, digits, '-' or '_'"
            " (after IDNA encoding), 253 characters in all"
        )
    return name


def ascii_url(url: str) -> str:
    """``url`` as libcurl is given it: the host through `ascii_host`, other non-ASCII
    characters percent-encoded. Registration runs it too (ValueError: 400), so every URL
    it accepts is one an attempt can send."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not hostport.startswith("["):  # an IPv6 literal, checked by urlsplit
        host, colon, port = hostport.partition(":")
        hostport = ascii_host(host) + colon + port
    if url.isascii():
        return url
    parts = parts._replace(netloc=userinfo + at + hostport)
    return urlunsplit(tuple(quote(part, safe=_URL_SAFE) for part in parts))


def _url(value: str, schemes: tuple[str, ...]) -> str:
    expected = f"must be an absolute {' or '.join(schemes)} URL"
    if _URL_FORBIDDEN.search(value):
        raise ValueError("a URL must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{expected} ({exc})") from None
    if parts.scheme.lower() not in schemes or not parts.hostname or port == 0:
        raise ValueError(expected)
    ascii_url(value)
    return value


def _target_url(value: str, info: ValidationInfo) -> str:
    if _stored(info):
        # Checked when it was registered, and sealed since: parsing it again for every
        # attempt took a third of the request's validation.
        return value
    return _url(value, ("http", "https"))


def _referer(value: str) -> str:
    return "AUTO" if value.upper() == "AUTO" else _url(value, ("http", "https"))


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def _host(value: str) -> str:
    """An IP address, or a host name kept as libcurl gets it (no URL to encode it later)."""
    try:
        return _ip(value)
    except ValueError:
        return ascii_host(value)


def _base64(value: str) -> str:
    compact = "".join(value.split())  # `base64` wraps its output; the line breaks mean nothing
    try:
        decoded = base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise ValueError("must be base64") from None
    if not decoded:
        raise ValueError("must not be empty")
    return compact


def _hsts(value: object) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _base64(value)
    raise ValueError("must be true, false or the base64 of an HSTS cache file")


def _data_object(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    # A stored document was checked when it was stored, or is a body the server made (a
    # callback's outcome report, whose response may be long): no client length limit then.
    return _json_object(value, max_string=None if _stored(info) else MAX_DATA_STRING)


def _json_object(
    value: dict[str, Any], path: str = "", depth: int = 1, *, max_string: int | None
) -> dict[str, Any]:
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if not _KEY.fullmatch(key):
            raise ValueError(f"key {where!r} must match {KEY_PATTERN}")
        if isinstance(item, dict):
            if depth == MAX_JSON_DEPTH:
                raise ValueError(f"{where!r}: objects nest at most {MAX_JSON_DEPTH} levels deep")
            _json_object(item, where, depth + 1, max_string=max_string)
        elif isinstance(item, str):
            if max_string is not None and len(item) > max_string:
                raise ValueError(f"{where!r}: strings are at most {max_string} characters")
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{where!r}: numbers must be finite")
        elif item is not None and not isinstance(item, int | float):
            raise ValueError(f"{where!r}: values are strings, numbers, booleans, null or objects")
    return value


def _cookie_value(value: str) -> str:
    if ";" in value:
        raise ValueError('must not contain ";"')
    return _single_line(value)


def _instant(value: Any, info: ValidationInfo) -> int:
    return timeutil.parse_instant(value, (info.context or {}).get("tz", "UTC"))


_SHAPES: dict[type, str] = {str: "text", list: "list", dict: "object"}


def _shape(value: Any) -> str | None:
    return _SHAPES.get(type(value))


def _now(info: ValidationInfo) -> int:
    now = (info.context or {}).get("now")
    return timeutil.now_ms() if now is None else int(now)


def _start(execute_at: int | None, execution_delay: int, now: int) -> int:
    return execute_at if execute_at is not None else now + execution_delay


# --- reusable types -----------------------------------------------------------------------

Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
HeaderValue = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_single_line)
]
Headers = dict[Key, HeaderValue]
Query = dict[Key, Annotated[str, StringConstraints(min_length=1, max_length=1024)]]
Metadata = Annotated[
    dict[Key, Annotated[str, StringConstraints(min_length=1, max_length=512)]],
    Field(min_length=1, max_length=8),
]
_URI = Field(json_schema_extra={"format": "uri"})
TargetUrl = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_target_url), _URI]
HttpsUrl = Annotated[
    str, StringConstraints(max_length=1024), AfterValidator(lambda v: _url(v, ("https",))), _URI
]
Method = Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_upper)]
IpAddress = Annotated[str, AfterValidator(_ip)]
Host = Annotated[str, AfterValidator(_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
Base64 = Annotated[str, AfterValidator(_base64)]
CertSource = Annotated[str, StringConstraints(min_length=1)]  # base64 or a path (executor decides)
Instant = Annotated[
    int,
    BeforeValidator(_instant),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]
Hsts = Annotated[
    bool | str,
    PlainValidator(_hsts),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "format": "base64"}]}),
]
Proto = Literal["http", "https"]
TlsVersion = Literal["1.0", "1.1", "1.2", "1.3"]


class _Body(BaseModel):
    """Request-body objects: camelCase keys only, unknown keys refused, no type coercion."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True)


class NameValue(_Body):
    """One multipart form field."""

    name: Key = Field(description="The form field's name")
    value: Annotated[str, StringConstraints(max_length=4096)] = Field(
        description="The form field's value (at most 4096 characters)"
    )


class Cookie(_Body):
    name: Key = Field(description="The cookie's name")
    value: Annotated[str, StringConstraints(max_length=4096), AfterValidator(_cookie_value)] = (
        Field(description='The cookie\'s value (no ";"; redacted in /config)')
    )


class Credentials(_Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The user name (1–64 characters)"
    )
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="The password (1–256 characters; redacted in /config)"
    )


_AwsPart = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
_AwsSecret = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AwsSigv4(_Body):
    """libcurl's AWS_SIGV4 ``provider1:provider2:region:service``, signed with key:secret."""

    provider1: _AwsPart = Field(description='First provider part, e.g. "aws"')
    provider2: _AwsPart = Field(description='Second provider part, e.g. "amz"')
    region: _AwsPart = Field(description='The region, e.g. "eu-west-1"')
    service: _AwsPart = Field(description='The service, e.g. "execute-api"')
    key: _AwsSecret = Field(description="The access key id (redacted in /config)")
    secret: _AwsSecret = Field(description="The secret access key (redacted in /config)")


Data = Annotated[
    Annotated[str, Tag("text"), StringConstraints(min_length=1, max_length=4096)]
    | Annotated[list[NameValue], Tag("list"), Field(min_length=1, max_length=64)]
    | Annotated[dict[str, Any], AfterValidator(_data_object), Tag("object")],
    Discriminator(
        _shape,
        custom_error_type="data_type",
        custom_error_message="must be a string, a list of {name, value} or a JSON object",
    ),
]
CookieInput = Annotated[
    Annotated[list[Cookie], Tag("list"), Field(min_length=1, max_length=16)]
    | Annotated[Base64, Tag("text")],
    Discriminator(
        _shape,
        custom_error_type="cookie_type",
        custom_error_message="must be a list of {name, value} or the base64 of a cookie file",
    ),
]


class HttpRequest(_Body):
    """The request to send later."""

    url: TargetUrl = Field(
        description="The http or https URL (at most 1024 characters; a host name that is not "
        "ASCII is IDNA-encoded, one with a trailing dot is refused)"
    )
    method: Method = Field(description="GET, POST, PUT, PATCH or DELETE (any case)")
    query: Query | None = Field(
        None, description="Query parameters appended URL-encoded (values redacted in /config)"
    )
    headers: Headers | None = Field(
        None,
        description="Request headers; User-Agent is config.userAgent, framing, connection "
        "and Webhook-* headers are refused (also spelt with _ for -), so are control "
        "characters but tab in values, and a value of only spaces and tabs drops its header",
    )
    data: Data | None = Field(
        None,
        description="The body: a string (text/plain unless a header says otherwise), a list of "
        "{name, value} (multipart form) or a JSON object; dropped for GET and DELETE",
    )
    cookie: CookieInput | None = Field(
        None, description="Cookies: a list of {name, value}, or the base64 of a cookie file"
    )
    auth_basic: Credentials | None = Field(None, description="HTTP Basic authentication")
    auth_digest: Credentials | None = Field(None, description="HTTP Digest authentication")
    auth_ntlm: Credentials | None = Field(
        None, description="NTLM authentication (needs a libcurl with NTLM)"
    )
    auth_aws_sigv4: AwsSigv4 | None = Field(None, description="AWS Signature Version 4")
    transport: Literal["curl", "fetch"] | None = Field(  # compatibility only: libcurl sends all
        None, description="Accepted for compatibility; every request goes through libcurl"
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_browser_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _BROWSER_ONLY:
                if name in data:
                    raise ValueError(
                        f"{name} is a browser-only fetch option and is not supported"
                        " (every request goes through libcurl)"
                    )
        return data

    @field_validator("headers")
    @classmethod
    def _owner_headers(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        return _request_headers(value, info)

    @model_validator(mode="after")
    def _drop_body(self) -> Self:
        if self.method in ("GET", "DELETE"):
            self.data = None
        return self


class Cert(_Body):
    value: CertSource = Field(
        description="The client certificate: base64, or a file path under CERTS_DIR"
    )
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        None, description="The certificate's passphrase (redacted in /config)"
    )


class Resolve(_Body):
    """One curl ``--resolve`` entry: connect to these addresses for host:port."""

    host: Host = Field(description="The host name (or IP) to pin")
    port: Port = Field(description="The port (not 22)")
    address: Annotated[list[IpAddress], Field(min_length=1, max_length=4)] = Field(
        description="1–4 IPv4 or IPv6 addresses to use instead of DNS"
    )

    @field_validator("port")
    @classmethod
    def _not_ssh(cls, value: int) -> int:
        if value == 22:
            raise ValueError("port 22 is not allowed")
        return value


class Proxy(_Body):
    protocol: Proto = Field(description='The proxy\'s protocol: "http" or "https"')
    host: Host = Field(description="The proxy's host name or IP")
    port: Port | None = Field(None, description="The proxy's port (libcurl's default when absent)")


MAX_FLOW_LIMIT = 10_000


class FlowControl(_Body):
    """SPEC §11.3: limits shared by the owner's tasks that carry the same key."""

    key: Annotated[
        str, StringConstraints(min_length=1, max_length=64), AfterValidator(_single_line)
    ] = Field(description="1–64 characters; the owner's tasks with this key share the limits")
    parallelism: int | None = Field(
        None, ge=1, le=MAX_FLOW_LIMIT, description="At most this many attempts in flight at once"
    )
    rate_per_second: float | None = Field(
        None,
        gt=0,
        le=MAX_FLOW_LIMIT,
        allow_inf_nan=False,
        description="At most this many attempts started per second (fractions allowed: 0.5 is "
        "one every 2 s)",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.parallelism is None and self.rate_per_second is None:
            raise ValueError("flowControl needs parallelism, ratePerSecond or both")
        return self


class Callback(_Body):
    """Where a task's outcome is POSTed (SPEC §11.2), as a task of its own."""

    url: TargetUrl = Field(
        description="The http or https URL (at most 1024 characters; a host name that is not "
        "ASCII is IDNA-encoded, one with a trailing dot is refused)"
    )
    headers: Headers | None = Field(
        None,
        description="Headers sent with the outcome, under the rules of httpRequest.headers; "
        "Content-Type and X-Tasks-Callback are the server's",
    )

    @field_validator("headers")
    @classmethod
    def _owner_headers(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        value = _request_headers(value, info)
        for name in value or {}:
            if _canonical(name) == "content-type":
                raise ValueError(f"header {name!r} is not allowed: the outcome is JSON")
        return value


class QueueConfig(_Body):
    """SPEC §2 ``config``. Field order matters: later checks read earlier fields."""

    execution_delay: int = Field(
        1,
        ge=0,
        le=MAX_DELAY_MS,
        description="ms after registration until the first attempt (default 1); ignored when "
        "executeAt is given",
    )
    execute_at: Instant | None = Field(
        None,
        description='When to run: epoch ms, ISO 8601 or a date string such as "Dec 12 2012 '
        '12:12:12 AM +07:00" (no zone: TZ); must be in the future',
    )
    execute_immediately: bool = Field(
        False,
        description="With executeAt: if that time passed while the task was paused, run it at "
        "resume",
    )
    retry: int = Field(
        0,
        ge=0,
        le=MAX_RETRY,
        description="Retries after the first attempt (default 0), so retry+1 attempts at most",
    )
    retry_interval: int = Field(
        1, ge=1, le=MAX_DELAY_MS, description="ms before a retry (default 1)"
    )
    retry_exponential: bool = Field(
        True,
        description="Retry n waits retryInterval × n (default true); false: each waits "
        "retryInterval. Forced false when retry ≤ 1",
    )
    retry_backoff: Literal["fixed", "linear", "exponential"] | None = Field(
        None,
        description='Instead of retryExponential: "fixed", "linear" (retryInterval × n) or '
        '"exponential" (retryInterval × 2^(n-1))',
    )
    retry_max_interval: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        description="Cap on a retry's wait, in ms (at least retryInterval)",
    )
    retry_jitter: bool = Field(
        False, description="Spread each retry's wait uniformly over [wait/2, wait] (default false)"
    )
    retry_at: Instant | None = Field(
        None,
        description="Exactly one retry, at this time (epoch ms or date string; sets retry to 1); "
        "at least 1 s after the execution time",
    )
    ignore_status_code: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=list,
        max_length=40,
        description="Up to 40 status codes in 400–599 that count as success",
    )
    timeout: int = Field(
        30_000,
        ge=1000,
        le=MAX_TIMEOUT_MS,
        description="ms per attempt (default 30000, at least 1000); over it the attempt fails "
        "with statusCode 408",
    )
    timeout_at: Instant | None = Field(
        None,
        description="Absolute deadline of the first attempt (epoch ms or date string); at least 1 "
        "s after the execution time",
    )
    http_version: Literal["0.9", "1.0", "1.1", "2", "2-prior-knowledge"] = Field(
        "1.1", description='HTTP version: "0.9", "1.0", "1.1" (default), "2" or "2-prior-knowledge"'
    )
    user_agent: Annotated[
        str, StringConstraints(min_length=8, max_length=256), AfterValidator(_single_line)
    ] = Field(DEFAULT_USER_AGENT, description="The User-Agent header (8–256 characters)")
    ip_version: Literal[4, 6] = Field(
        4, description="Resolve names to IPv4 (4, default) or IPv6 (6) addresses only"
    )
    referer_url: Annotated[str, StringConstraints(max_length=1024), AfterValidator(_referer)] = (
        Field(
            "AUTO",
            description='The Referer: a URL, or "AUTO" (default: libcurl sets it on redirects)',
        )
    )
    keep_alive_duration: int = Field(
        30,
        ge=0,
        le=259_200,
        description="TCP keep-alive idle time in seconds (default 30, 0 turns it off)",
    )
    hsts: Hsts | None = Field(
        None, description="true: HSTS on with no cache file; or the base64 of an HSTS cache file"
    )
    session_id: bool = Field(True, description="TLS session-id caching (default true)")
    insecure: bool = Field(False, description="Skip TLS verification of the target (default false)")
    trace_response_data: bool = Field(
        True, description="Keep the response body in response (default true)"
    )
    ca: CertSource | None = Field(
        None,
        description="CA certificates: base64 PEM, or a file path under CERTS_DIR (redacted in "
        "/config)",
    )
    cert: Cert | None = Field(None, description="The client certificate (redacted in /config)")
    cert_type: Literal["PEM", "DER", "ENG", "P12"] = Field(
        "PEM",
        description='The client certificate\'s format: "PEM" (default), "DER", "ENG" or "P12"',
    )
    key_type: Literal["PEM", "DER", "ENG"] = Field(
        "PEM", description='The client key\'s format: "PEM" (default), "DER" or "ENG"'
    )
    cert_status: bool | None = Field(
        None, description="Check the target's OCSP stapled status (curl --cert-status)"
    )
    key: CertSource | None = Field(
        None,
        description="The client private key: base64, or a file path under CERTS_DIR (redacted in "
        "/config)",
    )
    location: bool = Field(
        True, description="Follow redirects (default true), at most redirectAttempts"
    )
    redirect_attempts: int = Field(
        8, ge=0, le=32, description="At most this many redirects (0–32, default 8)"
    )
    location_trusted: Credentials | None = Field(
        None, description="Credentials sent on redirects to other hosts too"
    )
    proto: Proto | None = Field(None, description='Allow only this protocol: "http" or "https"')
    proto_redirect: Proto | None = Field(
        None, description='Allow only this protocol on redirects: "http" or "https"'
    )
    dns_server: list[IpAddress] | None = Field(
        None,
        min_length=1,
        max_length=4,
        description="1–4 DNS server IPs (needs a libcurl with c-ares)",
    )
    resolve: list[Resolve] | None = Field(
        None, min_length=1, max_length=4, description="1–4 host:port pins, as curl --resolve"
    )
    doh_url: HttpsUrl | None = Field(None, description="A DNS-over-HTTPS server URL")
    doh_insecure: bool = Field(
        False, description="Skip TLS verification of the DNS-over-HTTPS server (default false)"
    )
    tls_version: TlsVersion | None = Field(None, description='Lowest TLS version: "1.0" to "1.3"')
    tls_max_version: TlsVersion | None = Field(
        None, description='Highest TLS version: "1.0" to "1.3"'
    )
    proxy: Proxy | None = Field(None, description="Send through this proxy")
    proxy_headers: Headers | None = Field(
        None,
        description="Headers for the proxy only, under the rules of httpRequest.headers but "
        "allowing Proxy-* (credential-like values redacted in /config)",
    )
    proxy_insecure: bool = Field(
        False, description="Skip TLS verification of an https proxy (default false)"
    )
    proxy_http_version: Literal["1.0", "1.1"] | None = Field(
        None, description='HTTP version to the proxy: "1.0" or "1.1"'
    )
    proxy_auth_basic: Credentials | None = Field(
        None, description="Basic authentication to the proxy"
    )
    proxy_auth_digest: Credentials | None = Field(
        None, description="Digest authentication to the proxy"
    )
    proxy_auth_ntlm: Credentials | None = Field(
        None, description="NTLM authentication to the proxy (needs a libcurl with NTLM)"
    )
    ha_proxy_client_ip: IpAddress | None = Field(
        None, description="Send a PROXY protocol v1 header with this client IP"
    )
    ha_proxy_protocol: bool = Field(
        False, description="Send a PROXY protocol v1 header (default false)"
    )
    flow_control: FlowControl | None = Field(
        None,
        description="Limit the attempts in flight and started per second of the owner's tasks "
        "sharing a key; tasks over the limit wait their turn in due order, never failing",
    )
    callback: Callback | None = Field(
        None,
        description="When the task ends SUCCESS, POST its outcome here (a task of its own, "
        "with its own retries and attempts: see callbackQueueId)",
    )
    failure_callback: Callback | None = Field(
        None,
        description="When the task ends ERROR (retries exhausted), POST its outcome here",
    )
    max_lateness: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        description="ms: an attempt that cannot start within this time of its due time (server "
        "down, circuit open, flow-control wait) is not sent: the task ends ERROR with the "
        "attempt outcome EXPIRED",
    )
    circuit_breaker: bool = Field(
        True,
        description="false: attempt this task even while its destination's circuit is open, "
        "and count none of its outcomes against it",
    )

    @field_validator("proxy_headers")
    @classmethod
    def _proxy_header_set(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # Proxy-Authorization and the like are what proxy headers are for; framing is not.
        return _header_set(value, proxy_allowed=True)

    @field_validator("execute_at")
    @classmethod
    def _in_future(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and (info.context or {}).get("check_future", True):
            now = _now(info)
            if value <= now:
                raise ValueError(f"must be in the future (it is {value}, now is {now})")
        return value

    @field_validator("retry_at", "timeout_at")
    @classmethod
    def _after_start(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Skipped when executeAt or executionDelay failed (that error is reported already),
        # and for a stored request read back (check_future False): its clock has moved on.
        if value is None or not {"execute_at", "execution_delay"} <= info.data.keys():
            return value
        if not (info.context or {}).get("check_future", True):
            return value
        start = _start(info.data["execute_at"], info.data["execution_delay"], _now(info))
        if value < start + MIN_GAP_MS:
            raise ValueError(
                f"must be at least {MIN_GAP_MS} ms after the execution time"
                f" (it is {value}, the execution time is {start})"
            )
        return value

    @model_validator(mode="after")
    def _normalise(self) -> Self:
        if self.retry_max_interval is not None and self.retry_max_interval < self.retry_interval:
            raise ValueError("retryMaxInterval must not be below retryInterval")
        if self.tls_version and self.tls_max_version and self.tls_version > self.tls_max_version:
            raise ValueError("tlsVersion must not be above tlsMaxVersion")
        if self.execute_at is not None:
            self.execution_delay = 0
        if self.retry_at is not None:
            self.retry = 1
        if self.retry <= 1:
            self.retry_exponential = False
        return self


REF_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
MAX_DEPENDENCIES = 100


class Dependency(_Body):
    """One task this task waits for (SPEC §17.2): a ``ref`` in the same batch, or the ``id``
    of one of the owner's tasks."""

    ref: Annotated[str, StringConstraints(pattern=REF_PATTERN)] | None = Field(
        None, description="The ref of a task of the same batch (1–64 of A-Z a-z 0-9 _ -)"
    )
    id: Annotated[str, StringConstraints(pattern=ULID_PATTERN)] | None = Field(
        None, description="The id of one of the owner's tasks"
    )
    require_success: bool = Field(
        True,
        description="Whether it must succeed (default true): if it ends ERROR or REVOKED, or "
        "is deleted, this task ends ERROR with statusCode 424; if false, this task runs "
        "once it ended, however",
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.ref is None) == (self.id is None):
            raise ValueError("give exactly one of ref and id")
        return self

    @property
    def name(self) -> str:
        """What placeholders call it."""
        return self.ref or self.id or ""


class QueueRegistration(_Body):
    """The body of ``POST /v1/queues/register``, and what is stored for a task."""

    http_request: HttpRequest = Field(description="The request to send")
    config: QueueConfig = Field(
        default_factory=QueueConfig, description="When and how to send it (all optional)"
    )
    metadata: Metadata | None = Field(
        None, description="1–8 string pairs of your own, returned as given"
    )
    labels: Labels | None = Field(
        None, description="Searchable pairs, stored in plain text (NOT encrypted)"
    )
    depends_on: (
        Annotated[list[Dependency], Field(min_length=1, max_length=MAX_DEPENDENCIES)] | None
    ) = Field(
        None,
        description="Tasks to wait for (SPEC §17): the task is WAITING until they ended, "
        "then due after its executionDelay (an executeAt stays absolute). Its URL, header "
        "values and data may carry {{deps.NAME.statusCode}}, {{deps.NAME.body}} and "
        "{{deps.NAME.json.path.to.0}}, NAME a dependency's ref or id",
    )

    @field_validator("depends_on")
    @classmethod
    def _distinct(cls, value: list[Dependency] | None) -> list[Dependency] | None:
        names = [dependency.name for dependency in value or ()]
        if len(set(names)) != len(names):
            raise ValueError("names the same task twice")
        return value

    # The W3C trace context the task was registered in (tasks_server.tracing): the server's,
    # never a field an owner sends; sealed beside the request.
    _traceparent: str | None = PrivateAttr(None)

    @property
    def traceparent(self) -> str | None:
        return self._traceparent

    def traced(self, traceparent: str | None) -> Self:
        """This registration keeping `traceparent` (set once, before it is shared)."""
        self._traceparent = traceparent
        return self


def execution_time(reg: QueueRegistration, now_ms: int) -> int:
    """When the first attempt of a task registered (or edited) at `now_ms` is due."""
    return _start(reg.config.execute_at, reg.config.execution_delay, now_ms)


# --- secrets ------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with its password (or a bare user, often a token) and query values hidden."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        user, host = parts.netloc.rpartition("@")[::2]
        name, has_password, _ = user.partition(":")
        parts = parts._replace(
            netloc=f"{name}:{SECRET}@{host}" if has_password else f"{SECRET}@{host}"
        )
    if parts.query:
        items = (item.partition("=") for item in parts.query.split("&"))
        query = "&".join(f"{name}={SECRET}" if eq else SECRET for name, eq, _ in items)
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def redact(dumped: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored registration dump with every secret replaced by ``"***"``.

    Passwords, AWS key and secret, cookies, CA/cert/key material, the HSTS file, URL
    passwords and bare users, every query value, and header values whose name looks like a
    credential. Usernames, names and the rest of the structure stay, so an owner recognises
    the task.
    """
    out = copy.deepcopy(dumped)
    request: dict[str, Any] = out.get("httpRequest") or {}
    config: dict[str, Any] = out.get("config") or {}
    for section, names in (
        (request, ("authBasic", "authDigest", "authNtlm")),
        (config, ("locationTrusted", "proxyAuthBasic", "proxyAuthDigest", "proxyAuthNtlm")),
    ):
        for name in names:
            if isinstance(section.get(name), dict):
                section[name]["password"] = SECRET
    if isinstance(aws := request.get("authAwsSigv4"), dict):
        aws["key"] = aws["secret"] = SECRET
    cookie = request.get("cookie")
    if isinstance(cookie, list):
        for item in cookie:
            item["value"] = SECRET
    elif cookie is not None:
        request["cookie"] = SECRET
    for name in ("ca", "key"):
        if config.get(name) is not None:
            config[name] = SECRET
    if isinstance(cert := config.get("cert"), dict):
        cert.update({k: SECRET for k in ("value", "password") if k in cert})
    if isinstance(config.get("hsts"), str):
        config["hsts"] = SECRET
    callbacks: list[dict[str, Any]] = [
        c for name in ("callback", "failureCallback") if isinstance(c := config.get(name), dict)
    ]
    for section, name in (
        (request, "headers"),
        (config, "proxyHeaders"),
        *((callback, "headers") for callback in callbacks),
    ):
        pairs = section.get(name) or {}
        for key in pairs:
            if _SENSITIVE_NAME.search(key):
                pairs[key] = SECRET
    if isinstance(query := request.get("query"), dict):
        request["query"] = dict.fromkeys(query, SECRET)
    for section, name in (
        (request, "url"),
        (config, "refererUrl"),
        (config, "dohUrl"),
        *((callback, "url") for callback in callbacks),
    ):
        if isinstance(section.get(name), str):
            section[name] = redact_url(section[name])
    return out


# --- responses and the list query ---------------------------------------------------------


class QueueState(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    REVOKED = "REVOKED"
    WAITING = "WAITING"  # for its dependencies (SPEC §17)


class _Out(BaseModel):
    """Response objects: built from snake_case names, serialised with ``by_alias=True``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class QueueSummary(_Out):
    id: str = Field(description="The task id (a ULID)")
    state: QueueState = Field(
        description="RUNNING, PAUSED, SUCCESS, ERROR, REVOKED or WAITING (for its dependencies)"
    )
    created_at: int = Field(description="When it was registered (epoch ms)")
    status_code: int = Field(description="HTTP status of the last attempt; 0 before any")
    estimate_end_at: int = Field(
        description="When it finished, was paused or revoked (epoch ms); 0 otherwise"
    )
    estimate_execution_at: int = Field(description="When the next attempt is due (epoch ms)")
    schedule_id: str | None = Field(None, description="The schedule that made it, or null")
    batch_id: str | None = Field(None, description="The batch it was registered in, or null")
    ref: str | None = Field(None, description="Its ref in its batch, or null")
    method: str | None = Field(None, description="The request's method")
    target: str | None = Field(
        None, description="The request's URL, its userinfo and query values shown as ***"
    )
    labels: dict[str, str] | None = Field(
        None, description="The task's labels (plain text, not encrypted), or null"
    )


class DependencyOut(_Out):
    id: str = Field(description="The task depended on")
    name: str = Field(description="What placeholders call it: its ref, or its id")
    require_success: bool = Field(description="Whether it must succeed")


class QueueOut(QueueSummary):
    response: str | None = Field(
        None,
        description="Base64 of the last response body (or of the error text); null before an "
        "attempt or when traceResponseData is false",
    )
    metadata: dict[str, str] | None = Field(
        None, description="The metadata given at registration, or null"
    )
    callback_queue_id: str | None = Field(
        None,
        description="The task delivering this task's outcome to its callback or "
        "failureCallback; null until the outcome is known (or without one)",
    )
    callback_of: str | None = Field(
        None, description="For a callback's own task: the task whose outcome it delivers"
    )
    dependencies: list[DependencyOut] | None = Field(
        None, description="The tasks it waits for or waited for (GET /v1/queues/{id} only)"
    )
    dependents: list[str] | None = Field(
        None, description="The tasks waiting for it (GET /v1/queues/{id} only)"
    )


class QueueConfigOut(_Out):
    """``GET /v1/queues/{id}/config``: the redacted stored request and retry progress."""

    http_request: dict[str, Any] = Field(
        description="The stored httpRequest, every secret shown as ***"
    )
    config: dict[str, Any] = Field(
        description="The stored config with its defaults, every secret shown as ***"
    )
    metadata: dict[str, str] | None = Field(None, description="The metadata, or null")
    retry_count: int = Field(description="Retries used so far")
    retry_limit: int = Field(description="Retries allowed (config.retry)")
    retrying: bool = Field(description="Whether the next attempt is a retry")
    estimate_next_retry_at: int = Field(
        description="When the next retry is due (epoch ms); 0 when none is"
    )


class ListQuery(BaseModel):
    """Query parameters of ``GET /v1/queues`` (strings in, so types are coerced)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=1000, description="At most this many tasks (1–1000)")
    offset: int = Field(0, ge=0, le=2**63 - 1, description="Skip this many tasks first")
    order: Literal["createdAt", "estimateEndAt", "estimateExecutionAt"] = Field(
        "createdAt", description="The time to order by"
    )
    sort: Literal["asc", "desc"] = Field("asc", description="Ascending or descending")
    state: Annotated[QueueState | None, BeforeValidator(_upper)] = Field(
        None, description="Only tasks in this state"
    )
    schedule_id: str | None = Field(
        None,
        alias="scheduleId",
        pattern=ULID_PATTERN,
        description="Only the tasks this schedule registered",
    )
    batch_id: str | None = Field(
        None, alias="batchId", pattern=ULID_PATTERN, description="Only the tasks of this batch"
    )
