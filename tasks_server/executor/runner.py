"""One attempt: options prepared from the request, sent through the transport, and the
outcome classified as SPEC §3.2 and §9.2 say.

``Outcome.status_code`` is what the task records (an HTTP status, or 408/422/500 for an
attempt that got no usable answer); ``kind`` is the attempt row's outcome, so a transport
error is never mistaken for a 500 answer; ``final`` marks a failure no retry can change (the
destination guard refused the address) or must not repeat (a 2xx/3xx answer too large to
keep: the target has the request, SPEC §15.3), which the scheduler does not retry.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks_server.executor.errors import (
    AttemptError,
    AttemptTimeout,
    DestinationRefused,
    ResponseTooLarge,
)
from tasks_server.executor.options import Attempt, Preparer, Signers, materialize
from tasks_server.executor.transport import Transport
from tasks_server.models.attempts import AttemptOutcome
from tasks_server.models.queues import QueueRegistration
from tasks_server.retry import RETRY_AFTER_STATUSES


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int
    body: bytes  # the response body, or the error text when the attempt failed
    succeeded: bool
    duration_ms: float
    kind: AttemptOutcome
    error: str | None = None  # libcurl's text or the guard's message; None for an HTTP answer
    final: bool = False  # no retry: the same attempt cannot succeed later
    retry_after: str | None = None  # a 429 or 503's Retry-After: the next retry waits for it
    answered: int = 0  # the target's status when the attempt records another (too large)

    @property
    def attempt_status(self) -> int:
        """The status the attempt row shows: what the target answered, when it did."""
        return self.answered or self.status_code


def _failed(exc: AttemptError) -> Outcome:
    if isinstance(exc, AttemptTimeout):
        kind = AttemptOutcome.TIMEOUT
    elif isinstance(exc, ResponseTooLarge):
        kind = AttemptOutcome.TOO_LARGE
    else:
        kind = AttemptOutcome.TRANSPORT
    answered = exc.response_status if isinstance(exc, ResponseTooLarge) else 0
    final = isinstance(exc, DestinationRefused) or (
        isinstance(exc, ResponseTooLarge) and exc.delivered
    )
    message = exc.message.encode()
    return Outcome(exc.status_code, message, False, 0.0, kind, exc.message, final, None, answered)


def unfilled(message: str) -> Outcome:
    """An attempt whose placeholders could not be filled: nothing was sent, and the same
    dependencies' responses cannot fill them later."""
    return Outcome(422, message.encode(), False, 0.0, AttemptOutcome.UNFILLED, message, True)


class Runner:
    def __init__(
        self,
        transport: Transport,
        *,
        max_body_bytes: int,
        certs_dir: Path | None,
        signers: Signers | None = None,
    ) -> None:
        self._transport = transport
        self._max_body_bytes = max_body_bytes
        self._preparer = Preparer(certs_dir=certs_dir, signers=signers)

    async def run(self, reg: QueueRegistration, attempt: Attempt) -> Outcome:
        if attempt.timeout_ms <= 0:
            return _failed(AttemptTimeout("timeoutAt passed before the attempt could start"))
        try:
            prepared = self._preparer.prepare(reg, attempt)
            if prepared.files:
                # Cookie and HSTS files: libcurl reads them only from disk.
                with tempfile.TemporaryDirectory(prefix="tasks-attempt-") as directory:
                    response = await self._transport.send(
                        materialize(prepared, Path(directory)),
                        max_body_bytes=self._max_body_bytes,
                        pool=attempt.owner_id,
                    )
            else:
                response = await self._transport.send(
                    prepared.options, max_body_bytes=self._max_body_bytes, pool=attempt.owner_id
                )
        except AttemptError as exc:
            return _failed(exc)
        status = response.status_code
        ok = 200 <= status < 400 or status in reg.config.ignore_status_code
        kind = AttemptOutcome.SUCCESS if ok else AttemptOutcome.FAILURE
        retry_after = response.retry_after if status in RETRY_AFTER_STATUSES else None
        return Outcome(
            status, response.body, ok, response.total_time_ms, kind, retry_after=retry_after
        )
