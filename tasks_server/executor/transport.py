"""The seam between the executor and the network: a protocol and its result type.

The executor depends on ``Transport`` only; production uses ``curl.CurlTransport``, tests
may pass a double. Failures are raised as ``errors.AttemptError`` subclasses; cancellation
of the awaiting task aborts the request and propagates ``asyncio.CancelledError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CurlResponse:
    """A complete response: any HTTP status, including 4xx/5xx, is a response."""

    status_code: int
    body: bytes
    total_time_ms: float
    effective_url: str
    retry_after: str | None = None  # the final response's Retry-After header, as sent


class Transport(Protocol):
    async def send(
        self, options: Sequence[tuple[int, Any]], *, max_body_bytes: int, pool: str
    ) -> CurlResponse:
        """Perform one request described by ``(pycurl option, value)`` pairs.

        The body is cut off while downloading once it exceeds ``max_body_bytes``. Only
        requests of the same ``pool`` (an owner id) may share connections.
        """
        ...
