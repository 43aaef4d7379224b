"""A task's curl-level options (SPEC §2) as a pure mapping to ``(pycurl option, value)`` pairs.

``prepare`` turns a validated registration plus one attempt into the options libcurl needs;
it does no I/O, so it is unit-tested without a network; a ``Preparer`` does the same for one
app's attempts, keeping what they share. Two things need the outside world and live beside
it: ``unsupported`` (run at registration) refuses what the running libcurl cannot do and
file paths outside ``CERTS_DIR``, and ``materialized`` writes the few inputs libcurl only
reads from files (cookie file, HSTS cache) into a private temp dir for one attempt.

Choices worth knowing:

- Certificate material is ``"/absolute/path"`` (a file inside ``CERTS_DIR``) or base64; base64
  is decoded and handed to libcurl as a blob, never written to disk.
- pycurl only takes ASCII ``str``, so owner-supplied text that may hold other characters
  (headers, cookies, credentials, user agent) is passed as UTF-8 ``bytes``, and URLs go
  through ``ascii_url``, the encoding registration checks them with.
- pycurl 7.49 cannot set ``PROTOCOLS_STR``; the equivalent bitmask options are used.
- Multipart forms are encoded here (``POSTFIELDS`` + boundary) rather than with libcurl's MIME
  API, which needs a live handle, or ``HTTPPOST``, which is deprecated.
- Signatures (SPEC §10.5, Standard Webhooks) cover the body bytes exactly as POSTFIELDS hands
  them to libcurl (b"" when nothing is sent); the timestamp is the attempt's, so the mapping
  stays pure. One ``v1,`` entry per secret: during a rotation, either secret verifies.
- One HTTP auth scheme per request: ``authAwsSigv4`` > ``authNtlm`` > ``authDigest`` >
  ``authBasic`` (same for the proxy). ``locationTrusted`` credentials are sent with that
  scheme (Basic when none), to every host; with SigV4 it only lets the signature follow.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import pycurl

from tasks_server.models.queues import Credentials, QueueConfig, QueueRegistration, ascii_url

from .errors import TransportError
from .guard import DestinationGuard, host_address

__all__ = [
    "Attempt",
    "CurlFeatures",
    "Prepared",
    "Preparer",
    "Signers",
    "materialize",
    "materialized",
    "prepare",
    "signer",
    "unsupported",
]

# Options and values newer than pycurl's constants (numbers from curl/curl.h).
DOH_SSL_VERIFYPEER: int = getattr(pycurl, "DOH_SSL_VERIFYPEER", 306)
DOH_SSL_VERIFYHOST: int = getattr(pycurl, "DOH_SSL_VERIFYHOST", 307)
CURLHSTS_ENABLE = 1
CURLHSTS_READONLYFILE = 2  # the cache is input only: libcurl must not write it back

_HTTP_VERSIONS = {
    "0.9": pycurl.CURL_HTTP_VERSION_1_0,
    "1.0": pycurl.CURL_HTTP_VERSION_1_0,
    "1.1": pycurl.CURL_HTTP_VERSION_1_1,
    "2": pycurl.CURL_HTTP_VERSION_2_0,
    "2-prior-knowledge": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
}
_TLS_MIN = {
    "1.0": pycurl.SSLVERSION_TLSv1_0,
    "1.1": pycurl.SSLVERSION_TLSv1_1,
    "1.2": pycurl.SSLVERSION_TLSv1_2,
    "1.3": pycurl.SSLVERSION_TLSv1_3,
}
_TLS_MAX = {
    "1.0": pycurl.SSLVERSION_MAX_TLSv1_0,
    "1.1": pycurl.SSLVERSION_MAX_TLSv1_1,
    "1.2": pycurl.SSLVERSION_MAX_TLSv1_2,
    "1.3": pycurl.SSLVERSION_MAX_TLSv1_3,
}
_PROTOCOLS = {
    None: pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS,
    "http": pycurl.PROTO_HTTP,
    "https": pycurl.PROTO_HTTPS,
}
_TASK_HEADERS = (  # set by the server alone (stored tasks predating a refusal included)
    "x-tasks-queue-id",
    "x-tasks-retry-count",
    "x-tasks-retry-limit",
    "x-tasks-estimate-next-retry-at",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)
_TRACED_HEADERS = (*_TASK_HEADERS, "traceparent")


@dataclass(frozen=True, slots=True)
class Attempt:
    queue_id: str
    owner_id: str  # its connections are pooled with this owner's only
    retry_count: int  # 0 for the first attempt, n for the n-th retry
    retry_limit: int
    due: int  # this attempt's due time, epoch ms
    timeout_ms: int  # effective timeout for this attempt (computed by the scheduler)
    signing_secrets: tuple[bytes, ...]  # raw HMAC keys, current first; () sends no signature
    sent_at_s: int  # webhook-timestamp: when the attempt starts, epoch seconds
    traceparent: str | None = None  # this attempt's W3C trace context (tasks_server.tracing)


@dataclass(frozen=True, slots=True)
class Prepared:
    options: list[tuple[int, Any]]
    # Options whose value must be a path libcurl reads (cookie file, HSTS cache): option ->
    # content. ``materialized`` writes them to a private temp dir and appends (option, path).
    files: dict[int, bytes]


# --- the pure mapping ---------------------------------------------------------------------


# An owner's keyed HMAC-SHA256 state for one of its secrets (`signer`): signing copies it.
Signers = Callable[[str, bytes], hmac.HMAC]


def signer(secret: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with `secret`: signing a copy costs half of keying anew."""
    return hmac.new(secret, digestmod=hashlib.sha256)


def _keyed_anew(owner_id: str, secret: bytes) -> hmac.HMAC:
    return signer(secret)


def prepare(reg: QueueRegistration, attempt: Attempt, *, certs_dir: Path | None) -> Prepared:
    """The libcurl options of one attempt of ``reg``.

    Raises ``TransportError`` (the attempt fails with 500) when a stored certificate path is
    no longer inside ``certs_dir`` (the setting changed since registration), or the stored URL
    has a host registration now refuses.
    """
    return _prepared(_fixed(reg, certs_dir), attempt, _keyed_anew)


class Preparer:
    """``prepare`` for the attempts of one app, keeping what they share.

    The tasks of one stored document share one request model (``TaskCodec.open_request``), so
    their attempts skip the mapping of what no attempt changes. Signing copies the secrets'
    keyed states from `signers` (the app's ``SigningKeys.signer``, which drops an owner's on
    rotation); without it each attempt keys anew. Made by the app, so two apps in one process
    share nothing.
    """

    def __init__(self, *, certs_dir: Path | None, signers: Signers | None = None) -> None:
        self._certs_dir = certs_dir
        self._signers = signers or _keyed_anew
        self._kept: dict[int, tuple[QueueRegistration, _Fixed]] = {}

    def prepare(self, reg: QueueRegistration, attempt: Attempt) -> Prepared:
        return _prepared(self._fixed(reg), attempt, self._signers)

    def _fixed(self, reg: QueueRegistration) -> _Fixed:
        kept = self._kept.get(id(reg))
        if kept is not None and kept[0] is reg:
            return kept[1]
        fixed = _fixed(reg, self._certs_dir)
        if len(self._kept) >= _FIXED_KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[id(reg)] = (reg, fixed)  # holding the model, its id stays unique
        return fixed


def _prepared(fixed: _Fixed, attempt: Attempt, signers: Signers) -> Prepared:
    headers = [*fixed.headers, f"X-Tasks-Queue-Id: {attempt.queue_id}"]
    if attempt.retry_count > 0:
        headers += [
            f"X-Tasks-Retry-Count: {attempt.retry_count}",
            f"X-Tasks-Retry-Limit: {attempt.retry_limit}",
            f"X-Tasks-Estimate-Next-Retry-At: {attempt.due}",
        ]
    if attempt.traceparent is not None:
        headers.append(f"traceparent: {attempt.traceparent}")
    if attempt.signing_secrets:
        headers += _signature_headers(attempt, fixed.body, signers)
    options = [
        *fixed.head,
        (pycurl.HTTPHEADER, headers),
        (pycurl.USERAGENT, fixed.user_agent),
        (pycurl.TIMEOUT_MS, attempt.timeout_ms),
        *fixed.tail,
    ]
    return Prepared(options, fixed.files)


@dataclass(frozen=True, slots=True)
class _Fixed:
    """The options of a request that no attempt changes: all but its task headers and
    timeout. Shared by attempts: never changed once made."""

    head: list[tuple[int, Any]]  # URL, method and body
    headers: list[str | bytes]  # the owner's and the content type
    body: bytes  # what signatures sign
    user_agent: str | bytes
    tail: list[tuple[int, Any]]
    files: dict[int, bytes]


_FIXED_KEPT = 256  # request models a preparer keeps the mapping of


def _fixed(reg: QueueRegistration, certs_dir: Path | None) -> _Fixed:
    request, config = reg.http_request, reg.config
    head: list[tuple[int, Any]] = [(pycurl.URL, _request_url(request.url, request.query))]
    files: dict[int, bytes] = {}

    # A traced task's attempts carry the server's traceparent instead of the owner's.
    reserved = _TRACED_HEADERS if reg.traceparent is not None else _TASK_HEADERS
    owner = {k: v for k, v in (request.headers or {}).items() if k.lower() not in reserved}
    headers = [f"{name}: {value}" for name, value in owner.items()]
    has_content_type = any(name.lower() == "content-type" for name in owner)
    body: bytes | None = None
    data = request.data
    if isinstance(data, str):
        body = data.encode()
        if not has_content_type:
            headers.append("Content-Type: text/plain")
    elif isinstance(data, list):
        body, content_type = _multipart([(f.name, f.value) for f in data])
        # The boundary must be ours, so a form replaces any Content-Type the owner set.
        headers = [h for h in headers if not h.lower().startswith("content-type:")]
        headers.append(f"Content-Type: {content_type}")
    elif data is not None:
        body = orjson.dumps(data)
        if not has_content_type:
            headers.append("Content-Type: application/json")

    if request.method == "GET":
        head.append((pycurl.HTTPGET, 1))
    elif request.method == "DELETE":
        head.append((pycurl.CUSTOMREQUEST, "DELETE"))
    else:
        # POSTFIELDS makes a POST (b"" when there is no data: Content-Length 0, never a read
        # from stdin); POST without CUSTOMREQUEST turns into GET on 301/302/303 like browsers.
        if request.method != "POST":
            head.append((pycurl.CUSTOMREQUEST, request.method))
        head.append((pycurl.POSTFIELDS, body or b""))
    options: list[tuple[int, Any]] = []

    if isinstance(request.cookie, list):
        options.append(
            (pycurl.COOKIE, _text("; ".join(f"{c.name}={c.value}" for c in request.cookie)))
        )
    elif request.cookie is not None:
        files[pycurl.COOKIEFILE] = _b64(request.cookie)

    trusted = config.location_trusted
    if (aws := request.auth_aws_sigv4) is not None:
        options.append(
            (pycurl.AWS_SIGV4, f"{aws.provider1}:{aws.provider2}:{aws.region}:{aws.service}")
        )
        # USERNAME/PASSWORD rather than USERPWD "key:secret": a key holding ":" stays whole.
        options += [(pycurl.USERNAME, _text(aws.key)), (pycurl.PASSWORD, _text(aws.secret))]
    else:
        method, credentials = _auth(
            request.auth_ntlm, request.auth_digest, request.auth_basic or trusted
        )
        if credentials is not None:
            options.append((pycurl.HTTPAUTH, method))
            options += _credentials(pycurl.USERNAME, pycurl.PASSWORD, trusted or credentials)
    if trusted is not None:
        options.append((pycurl.UNRESTRICTED_AUTH, 1))

    options += _connection(config)
    options += _tls(config, certs_dir)
    options += _proxy(config)
    if config.hsts is True:
        options.append((pycurl.HSTS_CTRL, CURLHSTS_ENABLE))
    elif isinstance(config.hsts, str):
        options.append((pycurl.HSTS_CTRL, CURLHSTS_ENABLE | CURLHSTS_READONLYFILE))
        files[pycurl.HSTS] = _b64(config.hsts)
    return _Fixed(
        head,
        [_text(h) for h in headers],
        body or b"",
        _text(config.user_agent),
        options,
        files,
    )


def _signature_headers(attempt: Attempt, body: bytes, signers: Signers) -> list[str]:
    """Standard Webhooks: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` per secret."""
    signed = f"{attempt.queue_id}.{attempt.sent_at_s}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(_mac(signers(attempt.owner_id, secret), signed)).decode()
        for secret in attempt.signing_secrets
    )
    return [
        f"webhook-id: {attempt.queue_id}",
        f"webhook-timestamp: {attempt.sent_at_s}",
        f"webhook-signature: {signatures}",
    ]


def _mac(keyed: hmac.HMAC, message: bytes) -> bytes:
    """HMAC-SHA256 from a copy of the secret's keyed state (half the cost of keying anew).

    Not hmac.digest: it releases the GIL on every call, and the SQLite writer thread then
    takes it mid-attempt; an HMAC object keeps it for messages under 2 KiB."""
    mac = keyed.copy()
    mac.update(message)
    return mac.digest()


def _connection(config: QueueConfig) -> list[tuple[int, Any]]:
    options: list[tuple[int, Any]] = [(pycurl.HTTP_VERSION, _HTTP_VERSIONS[config.http_version])]
    if config.http_version == "0.9":
        options.append((pycurl.HTTP09_ALLOWED, 1))
    options.append(
        (pycurl.IPRESOLVE, pycurl.IPRESOLVE_V4 if config.ip_version == 4 else pycurl.IPRESOLVE_V6)
    )
    if config.referer_url == "AUTO":
        options.append((pycurl.AUTOREFERER, 1))
    else:
        options.append((pycurl.REFERER, ascii_url(config.referer_url)))
    if config.keep_alive_duration:
        seconds = config.keep_alive_duration
        options += [
            (pycurl.TCP_KEEPALIVE, 1),
            (pycurl.TCP_KEEPIDLE, seconds),
            (pycurl.TCP_KEEPINTVL, seconds),
        ]
    else:
        options.append((pycurl.TCP_KEEPALIVE, 0))
    options.append((pycurl.FOLLOWLOCATION, int(config.location)))
    if config.location:
        options.append((pycurl.MAXREDIRS, config.redirect_attempts))
    options += [
        (pycurl.PROTOCOLS, _PROTOCOLS[config.proto]),
        (pycurl.REDIR_PROTOCOLS, _PROTOCOLS[config.proto_redirect]),
    ]
    if config.dns_server:
        options.append((pycurl.DNS_SERVERS, ",".join(_bracket(ip) for ip in config.dns_server)))
    if config.resolve:
        options.append(
            (
                pycurl.RESOLVE,
                [
                    f"{_bracket(r.host)}:{r.port}:{','.join(_bracket(a) for a in r.address)}"
                    for r in config.resolve
                ],
            )
        )
    if config.doh_url:
        options.append((pycurl.DOH_URL, ascii_url(config.doh_url)))
        if config.doh_insecure:
            options += [(DOH_SSL_VERIFYPEER, 0), (DOH_SSL_VERIFYHOST, 0)]
    if config.ha_proxy_protocol or config.ha_proxy_client_ip:
        options.append((pycurl.HAPROXYPROTOCOL, 1))
    if config.ha_proxy_client_ip:
        options.append((pycurl.HAPROXY_CLIENT_IP, config.ha_proxy_client_ip))
    own = (config.ha_proxy_client_ip, config.resolve, config.dns_server, config.doh_url)
    if config.ha_proxy_protocol or any(own):
        # A PROXY line, or an address this task chose, belongs to this task's connection:
        # libcurl's pool matches connections by host name, so take none and leave none behind.
        options += [(pycurl.FRESH_CONNECT, 1), (pycurl.FORBID_REUSE, 1)]
    return options


def _tls(config: QueueConfig, certs_dir: Path | None) -> list[tuple[int, Any]]:
    options: list[tuple[int, Any]] = []
    if not config.session_id:
        options.append((pycurl.SSL_SESSIONID_CACHE, 0))
    if config.insecure:
        options += [(pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0)]
    if config.ca is not None:
        options.append(
            _source("config.ca", config.ca, pycurl.CAINFO, pycurl.CAINFO_BLOB, certs_dir)
        )
    if config.cert is not None:
        options += [
            _source(
                "config.cert.value",
                config.cert.value,
                pycurl.SSLCERT,
                pycurl.SSLCERT_BLOB,
                certs_dir,
            ),
            (pycurl.SSLCERTTYPE, config.cert_type),
        ]
        if config.cert.password is not None:
            options.append((pycurl.KEYPASSWD, _text(config.cert.password)))
    if config.key is not None:
        options += [
            _source("config.key", config.key, pycurl.SSLKEY, pycurl.SSLKEY_BLOB, certs_dir),
            (pycurl.SSLKEYTYPE, config.key_type),
        ]
    if config.cert_status:
        options.append((pycurl.SSL_VERIFYSTATUS, 1))
    if config.tls_version or config.tls_max_version:
        low = _TLS_MIN[config.tls_version] if config.tls_version else pycurl.SSLVERSION_DEFAULT
        high = _TLS_MAX[config.tls_max_version] if config.tls_max_version else 0
        options.append((pycurl.SSLVERSION, low | high))
    return options


def _proxy(config: QueueConfig) -> list[tuple[int, Any]]:
    """Proxy options; the proxy-only ones are dropped when no proxy is configured."""
    proxy = config.proxy
    if proxy is None:
        return []
    address = f"{proxy.protocol}://{_bracket(proxy.host)}"
    options: list[tuple[int, Any]] = [
        (pycurl.PROXY, address if proxy.port is None else f"{address}:{proxy.port}")
    ]
    if config.proxy_http_version is not None:
        # Only the CONNECT request's version: HTTP_1_0 makes libcurl tunnel with HTTP/1.0.
        kind = (
            pycurl.PROXYTYPE_HTTP_1_0
            if config.proxy_http_version == "1.0"
            else pycurl.PROXYTYPE_HTTP
        )
        options.append((pycurl.PROXYTYPE, kind))
    if config.proxy_headers:
        options += [
            (pycurl.PROXYHEADER, [_text(f"{k}: {v}") for k, v in config.proxy_headers.items()]),
            (pycurl.HEADEROPT, pycurl.HEADER_SEPARATE),
        ]
    if config.proxy_insecure:
        options += [(pycurl.PROXY_SSL_VERIFYPEER, 0), (pycurl.PROXY_SSL_VERIFYHOST, 0)]
    method, credentials = _auth(
        config.proxy_auth_ntlm, config.proxy_auth_digest, config.proxy_auth_basic
    )
    if credentials is not None:
        options.append((pycurl.PROXYAUTH, method))
        options += _credentials(pycurl.PROXYUSERNAME, pycurl.PROXYPASSWORD, credentials)
    return options


def _auth(
    ntlm: Credentials | None, digest: Credentials | None, basic: Credentials | None
) -> tuple[int, Credentials | None]:
    """One scheme per request: the strongest given wins."""
    if ntlm is not None:
        return pycurl.HTTPAUTH_NTLM, ntlm
    if digest is not None:
        return pycurl.HTTPAUTH_DIGEST, digest
    return pycurl.HTTPAUTH_BASIC, basic


def _credentials(
    user: int, password: int, credentials: Credentials | None
) -> list[tuple[int, Any]]:
    if credentials is None:
        return []
    return [(user, _text(credentials.username)), (password, _text(credentials.password))]


def _source(
    where: str, value: str, path_option: int, blob_option: int, certs_dir: Path | None
) -> tuple[int, Any]:
    if not is_path(value):
        return blob_option, _b64(value)
    if certs_dir is None or not _lexically_inside(value, certs_dir):
        raise TransportError(f"{where}: {value} is not inside CERTS_DIR")
    return path_option, value


def is_path(value: str) -> bool:
    """Certificate material is a file path when absolute; anything else is base64."""
    return value.startswith("/")


def _lexically_inside(path: str, directory: Path) -> bool:
    root = os.path.normpath(os.path.abspath(directory))
    return os.path.commonpath([root, os.path.normpath(path)]) == root


def _request_url(url: str, query: dict[str, str] | None) -> str:
    try:
        url = ascii_url(url)
    except ValueError as exc:  # stored before registration refused such hosts (SPEC §15.1)
        raise TransportError(f"httpRequest.url: {exc}") from None
    if not query:
        return url
    base, hash_, fragment = url.partition("#")
    # %20 rather than +: every server reads it as a space, and SigV4 signs it as such.
    query_string = urlencode(query, quote_via=quote)
    joint = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{joint}{query_string}{hash_}{fragment}"


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """``multipart/form-data`` as libcurl would send it, with a boundary absent from the values.

    The boundary is derived from the content, so the mapping stays deterministic.
    """
    values = [value.encode() for _, value in fields]
    seed = hashlib.sha256(b"\0".join(values)).hexdigest()
    counter = 0
    while True:
        boundary = f"------------------------{seed[:24]}{counter or ''}"
        if not any(boundary.encode() in value for value in values):
            break
        counter += 1
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for (name, _), value in zip(fields, values, strict=True)
    ]
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _text(value: str) -> str | bytes:
    return value if value.isascii() else value.encode()


def _b64(value: str) -> bytes:
    return base64.b64decode("".join(value.split()))


# --- what the running libcurl can do ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurlFeatures:
    """What the running libcurl supports, as far as task options care."""

    version: str
    ntlm: bool
    http2: bool
    hsts: bool
    https_proxy: bool
    ipv6: bool
    dns_servers: bool  # libcurl built with c-ares
    doh: bool
    aws_sigv4: bool
    blobs: bool  # certificates from memory (CAINFO_BLOB, SSLCERT_BLOB, SSLKEY_BLOB)
    cert_status: bool  # OCSP stapling check in the TLS backend
    haproxy_client_ip: bool

    @staticmethod
    @functools.cache
    def detect() -> CurlFeatures:
        """Read libcurl's feature bits, and probe options that have none on a scratch handle.

        Once per process: the loaded libcurl is the process's, and what it can do is neither
        an app's nor an owner's, so every app may share the answer."""
        info = pycurl.version_info()
        bits: int = info[4]
        curl = pycurl.Curl()
        try:

            def accepts(name: str, value: Any) -> bool:
                option = getattr(pycurl, name, None)
                if option is None:
                    return False
                try:
                    curl.setopt(option, value)
                except (pycurl.error, TypeError, ValueError):
                    return False
                return True

            return CurlFeatures(
                version=info[1],
                ntlm=bool(bits & pycurl.VERSION_NTLM),
                http2=bool(bits & pycurl.VERSION_HTTP2),
                hsts=bool(bits & getattr(pycurl, "VERSION_HSTS", 0)) and accepts("HSTS_CTRL", 1),
                https_proxy=bool(bits & getattr(pycurl, "VERSION_HTTPS_PROXY", 0)),
                ipv6=bool(bits & pycurl.VERSION_IPV6),
                dns_servers=accepts("DNS_SERVERS", "127.0.0.1"),
                doh=accepts("DOH_URL", "https://127.0.0.1/dns-query"),
                aws_sigv4=accepts("AWS_SIGV4", "aws:amz:us-east-1:s3"),
                blobs=all(
                    accepts(name, b"-") for name in ("CAINFO_BLOB", "SSLCERT_BLOB", "SSLKEY_BLOB")
                ),
                cert_status=accepts("SSL_VERIFYSTATUS", 1),
                haproxy_client_ip=accepts("HAPROXY_CLIENT_IP", "127.0.0.1"),
            )
        finally:
            curl.close()


def unsupported(
    reg: QueueRegistration,
    *,
    certs_dir: Path | None,
    guard: DestinationGuard | None = None,
    features: CurlFeatures | None = None,
) -> list[dict[str, str]]:
    """Why ``reg`` cannot be executed here, as ``[{"path", "message"}]`` (empty: it can).

    Options needing a libcurl feature the running libcurl lacks (SPEC §2: refused, never
    silently dropped), certificate paths that do not name an existing file inside
    ``certs_dir`` (no ``certs_dir``: every path is refused), and IP literals ``guard`` refuses
    (SPEC §10.2; host names are only judged at connect time, by the transport).
    """
    have = features or CurlFeatures.detect()
    request, config = reg.http_request, reg.config
    problems: list[dict[str, str]] = []
    if guard is not None:
        problems += _refused_literals(reg, guard)

    def lacks(path: str, feature: str) -> None:
        message = f"needs libcurl built with {feature}; this libcurl ({have.version}) lacks it"
        problems.append({"path": path, "message": message})

    if request.auth_ntlm is not None and not have.ntlm:
        lacks("httpRequest.authNtlm", "NTLM support")
    if request.auth_aws_sigv4 is not None and not have.aws_sigv4:
        lacks("httpRequest.authAwsSigv4", "AWS SigV4 support (7.75 or later)")
    if config.proxy_auth_ntlm is not None and not have.ntlm:
        lacks("config.proxyAuthNtlm", "NTLM support")
    if config.dns_server and not have.dns_servers:
        lacks("config.dnsServer", "c-ares")
    if config.doh_url and not have.doh:
        lacks("config.dohUrl", "DNS-over-HTTPS")
    if config.http_version in ("2", "2-prior-knowledge") and not have.http2:
        lacks("config.httpVersion", "HTTP/2 (nghttp2)")
    if config.hsts not in (None, False) and not have.hsts:
        lacks("config.hsts", "HSTS support")
    if config.ip_version == 6 and not have.ipv6:
        lacks("config.ipVersion", "IPv6")
    if config.cert_status and not have.cert_status:
        lacks("config.certStatus", "a TLS backend that checks OCSP stapling")
    if config.ha_proxy_client_ip and not have.haproxy_client_ip:
        lacks("config.haProxyClientIp", "HAPROXY_CLIENT_IP (libcurl 8.2 or later)")
    if config.proxy is not None and config.proxy.protocol == "https":
        if not have.https_proxy:
            lacks("config.proxy.protocol", "HTTPS-proxy support")
        if config.proxy_http_version == "1.0":  # libcurl would tunnel with 1.1 regardless
            message = "1.0 applies to an http proxy only; libcurl speaks HTTP/1.1 to an https one"
            problems.append({"path": "config.proxyHttpVersion", "message": message})
    for name in ("cert_type", "key_type"):
        if getattr(config, name) == "ENG":
            problems.append(
                {
                    "path": f"config.{'certType' if name == 'cert_type' else 'keyType'}",
                    "message": "ENG needs an OpenSSL crypto engine (CURLOPT_SSLENGINE),"
                    " which tasks-server does not configure; use PEM, DER or P12",
                },
            )
    sources: list[tuple[str, str | None]] = [("config.ca", config.ca), ("config.key", config.key)]
    if config.cert is not None:
        sources.insert(1, ("config.cert.value", config.cert.value))
    for path, value in sources:
        if value is None:
            continue
        problem = _check_path(value, certs_dir) if is_path(value) else _check_base64(value)
        if problem:
            problems.append({"path": path, "message": problem})
        elif not is_path(value) and not have.blobs:
            lacks(path, "in-memory certificates (7.77 or later, OpenSSL-compatible TLS)")
    return problems


def _refused_literals(reg: QueueRegistration, guard: DestinationGuard) -> list[dict[str, str]]:
    config = reg.config
    hosts = [("httpRequest.url", urlsplit(reg.http_request.url).hostname)]
    if config.proxy is not None:
        hosts.append(("config.proxy.host", config.proxy.host))
    if config.doh_url:
        hosts.append(("config.dohUrl", urlsplit(config.doh_url).hostname))
    callbacks = (("callback", config.callback), ("failureCallback", config.failure_callback))
    for name, callback in callbacks:
        if callback is not None:
            hosts.append((f"config.{name}.url", urlsplit(callback.url).hostname))
    # c-ares queries dnsServer over its own sockets, which OPENSOCKETFUNCTION never sees.
    hosts += [(f"config.dnsServer.{i}", ip) for i, ip in enumerate(config.dns_server or ())]
    for i, entry in enumerate(config.resolve or ()):
        hosts += [(f"config.resolve.{i}.address.{j}", a) for j, a in enumerate(entry.address)]
    problems = []
    for path, host in hosts:
        address = host_address(host) if host else None
        if address is not None and (refusal := guard.refusal(address)) is not None:
            problems.append({"path": path, "message": refusal})
    return problems


def _check_base64(value: str) -> str | None:
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        return "must be base64 of the file content, or an absolute file path inside CERTS_DIR"
    return None


def _check_path(value: str, certs_dir: Path | None) -> str | None:
    if certs_dir is None:
        return "file paths are refused: CERTS_DIR is not set (send the content as base64)"
    # Lexically first, so nothing is learnt about files outside CERTS_DIR.
    if not _lexically_inside(value, certs_dir):
        return f"{value} is not inside CERTS_DIR"
    try:
        real = Path(value).resolve(strict=True)
        root = certs_dir.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the path
        return f"{value} does not exist in CERTS_DIR"
    if not real.is_relative_to(root):
        return f"{value} resolves outside CERTS_DIR"
    if not real.is_file():
        return f"{value} is not a file"
    return None


# --- files libcurl can only read from disk ------------------------------------------------


def materialize(prepared: Prepared, directory: Path) -> list[tuple[int, Any]]:
    """Write ``prepared.files`` into ``directory`` (mode 0600) and return the full options."""
    options = list(prepared.options)
    for option, content in prepared.files.items():
        path = directory / str(option)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        options.append((option, str(path)))
    return options


@contextmanager
def materialized(prepared: Prepared) -> Iterator[list[tuple[int, Any]]]:
    """The options of one attempt, with its files in a private 0700 temp dir removed on exit.

    Keep the block open until the transfer has finished: libcurl reads the files then.
    """
    if not prepared.files:
        yield list(prepared.options)
        return
    with tempfile.TemporaryDirectory(prefix="tasks-attempt-") as directory:  # created 0700
        yield materialize(prepared, Path(directory))
