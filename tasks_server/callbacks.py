"""Outcome callbacks (SPEC §11.2): the task that reports a finished task's outcome.

A callback is a task of its own, of the same owner, that the outcome write inserts in the
transaction that records the outcome (``TaskStore.record(callback=...)``): a kill -9 right
after the outcome still delivers it. Being a task, its delivery is leased, signed with the
owner's secret, retried, visible at ``GET /v1/queues/{id}/attempts``, and can be paused or
revoked like any other. The parent shows it as ``callbackQueueId``, the child its parent as
``callbackOf``.

Its request is the server's: POST to the callback URL with the callback's headers plus
``Content-Type: application/json`` and ``X-Tasks-Callback: success|failure``, the outcome as
the JSON object ``{"queueId", "state", "statusCode", "attempts", "response", "metadata",
"scheduleId"}`` (``response``: base64 of the stored response body, null when
traceResponseData is off). That response may be longer than a client may put in a string of
``data`` (4096 characters), so the request is validated with the ``stored`` context of
``models.queues``: the server's own documents (a stored request read back, or this one) skip
that client-facing limit. Clients cannot give that context, so registrations keep the limit,
and a client's header ``X-Tasks-Callback`` is refused: it marks the server's callbacks.

The retries are fixed by the server: 5, exponential from 5 s (5, 10, 20, 40, 80 s: over
two and a half minutes). A callback has no callback of its own. It resolves names as its
parent does (``ipVersion``), or over IPv6 when its URL's host is an IPv6 literal.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from tasks_server.codec import TaskCodec
from tasks_server.models.lists import listing
from tasks_server.models.queues import (
    CALLBACK_HEADER,
    Callback,
    QueueConfig,
    QueueRegistration,
    QueueState,
)
from tasks_server.store.base import NewTask

Kind = Literal["success", "failure"]

RETRIES = 5
RETRY_INTERVAL_MS = 5_000


@dataclass(frozen=True, slots=True)
class Finished:
    """A task that just ended, as its callback reports it."""

    queue_id: str
    state: str  # SUCCESS or ERROR
    status_code: int
    attempts: int
    response: bytes | None  # None when traceResponseData is off
    metadata: dict[str, str] | None
    schedule_id: str | None


def wanted(config: QueueConfig, state: str | None) -> tuple[Kind, Callback] | None:
    """The callback a task with `config` has when it ends in `state`, with its kind."""
    if state == QueueState.SUCCESS and config.callback is not None:
        return "success", config.callback
    if state == QueueState.ERROR and config.failure_callback is not None:
        return "failure", config.failure_callback
    return None


def kind_of(reg: QueueRegistration) -> Kind | None:
    """Whether `reg` is a callback's request, and of which kind."""
    for name, value in (reg.http_request.headers or {}).items():
        if name.lower() == CALLBACK_HEADER.lower() and value in ("success", "failure"):
            return value  # type: ignore[return-value]
    return None


def request(
    callback: Callback, kind: Kind, finished: Finished, ip_version: int
) -> QueueRegistration:
    """The callback task's registration: the outcome POSTed as JSON."""
    body: dict[str, Any] = {
        "queueId": finished.queue_id,
        "state": finished.state,
        "statusCode": finished.status_code,
        "attempts": finished.attempts,
        "response": None
        if finished.response is None
        else base64.b64encode(finished.response).decode(),
        "metadata": finished.metadata,
        "scheduleId": finished.schedule_id,
    }
    headers = {**(callback.headers or {}), "Content-Type": "application/json"}
    headers[CALLBACK_HEADER] = kind
    host = urlsplit(callback.url).hostname or ""
    if _is_ipv6(host):
        ip_version = 6
    document = {
        "httpRequest": {"url": callback.url, "method": "POST", "headers": headers, "data": body},
        "config": {
            "retry": RETRIES,
            "retryInterval": RETRY_INTERVAL_MS,
            "retryBackoff": "exponential",
            "ipVersion": ip_version,
        },
    }
    context = {"check_future": False, "stored": True}
    return QueueRegistration.model_validate(document, context=context)


def task(
    codec: TaskCodec,
    callback: Callback,
    kind: Kind,
    finished: Finished,
    *,
    queue_id: str,
    now: int,
    ip_version: int,
    traceparent: str | None = None,
) -> NewTask:
    """The callback's task, due at once, its request sealed for `queue_id`; it keeps the
    trace context of the task it reports on."""
    reg = request(callback, kind, finished, ip_version).traced(traceparent)
    return NewTask(
        queue_id=queue_id,
        created_at=now,
        due=now,
        retry_limit=reg.config.retry,
        request=codec.seal_request(reg, queue_id),
        metadata=None,
        listing=listing(reg.http_request, None),
    )


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False
