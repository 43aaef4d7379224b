"""Sealing a task's sensitive columns: validated request, metadata, response.

Each blob is encrypted with its row id and column name as associated data, so a blob moved
to another row or column does not open. The keys looked up by equality (flow key,
`Idempotency-Key`) are stored as their owner's keyed digests instead (SPEC §15.7). The
request's document also keeps the task's trace context (``tracing.STORED``): the server's,
never validated as an owner's field.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from tasks_server import destinations, tracing
from tasks_server.crypto import Cipher
from tasks_server.destinations import Destination
from tasks_server.models.queues import QueueRegistration
from tasks_server.store.base import Flow

CACHED_REQUEST_BYTES = 16_384  # larger documents are validated on each open
DESTINATIONS_KEPT = 1_024  # (owner, URL) pairs whose destination is kept


def _validate(plain: bytes) -> QueueRegistration:
    document = orjson.loads(plain)
    traceparent = document.pop(tracing.STORED, None)
    context = {"check_future": False, "stored": True}
    return QueueRegistration.model_validate(document, context=context).traced(traceparent)


class TaskCodec:
    def __init__(self, cipher: Cipher) -> None:
        self._cipher = cipher
        # The tasks of one schedule, fan-out or retry storm store the same document, and
        # validating it is the costliest step of starting an attempt: a stored document
        # (validated with check_future off, so a pure function of its bytes) is validated
        # once while it is recent. Per codec, so per app: the plaintexts it keeps (owners'
        # credentials among them) are never shared with another app in the process.
        self._stored = functools.lru_cache(maxsize=256)(_validate)
        # Every attempt of a task names its destination: the address parsed from the URL and
        # its keyed digest cost more than the rest of the circuit check, so the recent ones
        # are kept (per codec: the digests are of this app's key).
        self._destinations = functools.lru_cache(maxsize=DESTINATIONS_KEPT)(self._destination)

    def seal_request(self, reg: QueueRegistration, queue_id: str) -> bytes:
        """Stores the request without its metadata and labels (which have their own columns)."""
        document = reg.model_dump(mode="json", by_alias=True, exclude_none=True)
        document.pop("metadata", None)
        document.pop("labels", None)
        if reg.traceparent is not None:
            document[tracing.STORED] = reg.traceparent
        return self.seal_json(document, queue_id, "request")

    def open_document(self, blob: bytes, queue_id: str) -> dict[str, Any]:
        """The stored request as the JSON document it was validated from (with the trace
        context it keeps, if any, under ``tracing.STORED``)."""
        document: dict[str, Any] = self.open_json(blob, queue_id, "request")
        return document

    def open_request(self, blob: bytes, queue_id: str) -> QueueRegistration:
        """The stored request, validated: read-only, as it may be shared (see `_stored`)."""
        plain = self.open(blob, queue_id, "request")
        if len(plain) > CACHED_REQUEST_BYTES:
            return _validate(plain)
        return self._stored(plain)

    def flow(self, reg: QueueRegistration, owner_id: str) -> Flow | None:
        """The task's flow control as stored: the key as its owner's digest."""
        control = reg.config.flow_control
        if control is None:
            return None
        key = self._cipher.flow_key(owner_id, control.key)
        return Flow(key, control.parallelism, control.rate_per_second)

    def destination(self, reg: QueueRegistration, owner_id: str) -> Destination | None:
        """The destination whose circuit the task's attempts wait for and count against;
        None when it opted out (`circuitBreaker: false`)."""
        if not reg.config.circuit_breaker:
            return None
        return self._destinations(owner_id, reg.http_request.url)

    def _destination(self, owner_id: str, url: str) -> Destination:
        where = destinations.address(url)
        return Destination(self._cipher.destination(owner_id, where), where)

    def idempotency_key(self, owner_id: str, key: str) -> str:
        return self._cipher.idempotency_key(owner_id, key)

    def seal_json(self, value: Any, queue_id: str, column: str) -> bytes:
        return self.seal(orjson.dumps(value), queue_id, column)

    def open_json(self, blob: bytes, queue_id: str, column: str) -> Any:
        return orjson.loads(self.open(blob, queue_id, column))

    def seal(self, data: bytes, queue_id: str, column: str) -> bytes:
        return self._cipher.encrypt(data, f"{queue_id}:{column}")

    def open(self, blob: bytes, queue_id: str, column: str) -> bytes:
        return self._cipher.decrypt(blob, f"{queue_id}:{column}")
