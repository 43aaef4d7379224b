"""One task of the original, as ours: its registration document, timing and progress.

The original keeps a registration as a `config` row: plain columns for numbers and flags,
encrypted JSON or text for the rest (its `registerTask`); a few quirks of how it writes
them are undone here:

- a retry overwrites `headers` with its own ``X-Tasks-*`` headers (the owner's are lost):
  those are dropped, as this server adds its own;
- `haProxyProtocol: true` is written into the `haProxyClientIp` column as 1;
- `data` and `cookie` are text or JSON in the same column: JSON that is an object or a list
  is taken as one (a text body that happens to be such JSON is then sent as JSON).

Due times: a waiting task is due at `estimateExecutionAt`, or `estimateNextRetryAt` while
retrying; one overdue runs at once. A paused task keeps what it had left when it was paused
(`estimateEndAt`), as ours does (SPEC §3.4).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACTIVE = ("RUNNING", "PAUSED")
FINISHED = ("SUCCESS", "ERROR", "REVOKED")
_SKIPPED_HEADERS = "x-tasks-"
# Encrypted JSON, under the same name in our registration.
_REQUEST_JSON = ("query", "headers", "authBasic", "authDigest", "authNtlm", "authAwsSigv4")
_CONFIG_JSON = (
    "ca", "cert", "locationTrusted", "dnsServer", "dohUrl", "resolve", "proxy",
    "proxyAuthBasic", "proxyAuthDigest", "proxyAuthNtlm", "proxyHeaders",
)  # fmt: skip
_CONFIG_TEXT = ("certType", "key", "keyType", "refererUrl")  # encrypted text
_CONFIG_PLAIN = (
    "timeout", "httpVersion", "redirectAttempts", "keepAliveDuration", "ipVersion", "proto",
    "protoRedirect", "tlsVersion", "tlsMaxVersion", "proxyHttpVersion",
)  # fmt: skip
_CONFIG_FLAGS = (
    "executeImmediately", "location", "dohInsecure", "insecure", "sessionId", "proxyInsecure",
    "traceResponseData",
)  # fmt: skip

Opener = Callable[[str], str]  # decrypts one value of the task


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    owner_id: str
    state: str
    created_at: int
    status_code: int
    due: int
    end_at: int
    paused_at: int | None
    retry_count: int
    retry_limit: int
    attempts: int
    document: dict[str, Any]  # our registration's httpRequest and config
    metadata: dict[str, Any] | None
    response: bytes | None


def task(row: dict[str, Any], open_value: Opener, now: int) -> Task:
    """The task of a queue+config row; ValueError for a state we do not know."""
    state = row["state"]
    if state not in ACTIVE + FINISHED:
        raise ValueError(f"unknown state {state!r}")
    retrying = bool(row["retrying"]) and state in ACTIVE
    due = row["estimateNextRetryAt"] if retrying else row["estimateExecutionAt"]
    if state == "RUNNING":
        due = max(due, now)
    response = row["response"]
    metadata = row["metadata"]
    return Task(
        id=row["id"],
        owner_id=row["ownerId"],
        state=state,
        created_at=row["createdAt"],
        status_code=row["statusCode"] or 0,
        due=due,
        end_at=row["estimateEndAt"] or 0,
        paused_at=row["estimateEndAt"] if state == "PAUSED" else None,
        retry_count=row["retryCount"] or 0,
        retry_limit=row["retryLimit"] or 0,
        attempts=(row["retryCount"] or 0) + (state in ("SUCCESS", "ERROR")),
        document={"httpRequest": http_request(row, open_value), "config": config(row, open_value)},
        metadata=None if metadata is None else json.loads(open_value(metadata)),
        response=None if response is None else base64.b64decode(open_value(response)),
    )


def http_request(row: dict[str, Any], open_value: Opener) -> dict[str, Any]:
    out: dict[str, Any] = {"url": open_value(row["url"]), "method": row["method"]}
    for name in _REQUEST_JSON:
        if row[name]:
            out[name] = json.loads(open_value(row[name]))
    headers = {
        name: value
        for name, value in (out.pop("headers", None) or {}).items()
        if not name.lower().startswith(_SKIPPED_HEADERS)
    }
    if headers:
        out["headers"] = headers
    for name in ("data", "cookie"):
        if row[name]:
            out[name] = _text_or_json(open_value(row[name]))
    if row.get("transport"):
        out["transport"] = row["transport"]
    return out


def config(row: dict[str, Any], open_value: Opener) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _CONFIG_PLAIN:
        if row[name] is not None:
            out[name] = row[name]
    for name in _CONFIG_FLAGS:
        out[name] = bool(row[name])
    for name in _CONFIG_JSON:
        if row[name]:
            out[name] = json.loads(open_value(row[name]))
    for name in _CONFIG_TEXT:
        if row[name]:
            out[name] = open_value(row[name])
    for name in ("executeAt", "timeoutAt", "retryAt"):
        if row[name]:
            out[name] = _instant(row[name])
    if "executeAt" not in out:
        out["executionDelay"] = int(row["executionDelay"])
    if "retryAt" not in out and row["retry"]:
        out["retry"] = row["retry"]
        out["retryInterval"] = row["retryInterval"]
        out["retryExponential"] = bool(row["retryExponential"])
    out["ignoreStatusCode"] = json.loads(row["ignoreStatusCode"] or "[]")
    if row["certStatus"]:
        out["certStatus"] = True
    if row["hsts"]:
        out["hsts"] = True if str(row["hsts"]) == "1" else json.loads(open_value(row["hsts"]))
    if row["haProxyClientIp"]:
        if str(row["haProxyClientIp"]) == "1":
            out["haProxyProtocol"] = True
        else:
            out["haProxyClientIp"] = open_value(row["haProxyClientIp"])
    if row["haProxyProtocol"]:
        out["haProxyProtocol"] = True
    return out


def _instant(value: str) -> int | str:
    """An `executeAt`-like value as the original wrote it: epoch ms, or the client's string."""
    return int(value) if value.isdigit() else value


def _text_or_json(value: str) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict | list) else value
