"""One attempt: options prepared from the request, sent through the transport, and the
outcome classified as SPEC §3.2 says."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks_server.executor.errors import AttemptError, AttemptTimeout, ResponseTooLarge
from tasks_server.executor.options import Attempt, materialize, prepare
from tasks_server.executor.transport import Transport
from tasks_server.models.attempts import AttemptOutcome
from tasks_server.models.queues import QueueRegistration


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int
    body: bytes  # the response body, or the error text when the attempt failed
    succeeded: bool
    duration_ms: float
    kind: AttemptOutcome
    error: str | None = None  # why no answer came (libcurl's text); None for an HTTP answer
    final: bool = False  # no retry, whatever the policy says


_KINDS: dict[type[AttemptError], AttemptOutcome] = {
    AttemptTimeout: AttemptOutcome.TIMEOUT,
    ResponseTooLarge: AttemptOutcome.TOO_LARGE,
}


def failed(exc: AttemptError) -> Outcome:
    """The outcome of an attempt that got no usable answer."""
    kind = _KINDS.get(type(exc), AttemptOutcome.TRANSPORT)
    return Outcome(exc.status_code, exc.message.encode(), False, 0.0, kind, exc.message)


class Runner:
    def __init__(
        self, transport: Transport, *, max_body_bytes: int, certs_dir: Path | None
    ) -> None:
        self._transport = transport
        self._max_body_bytes = max_body_bytes
        self._certs_dir = certs_dir

    async def run(self, reg: QueueRegistration, attempt: Attempt) -> Outcome:
        if attempt.timeout_ms <= 0:
            return failed(AttemptTimeout("timeoutAt passed before the attempt could start"))
        try:
            prepared = prepare(reg, attempt, certs_dir=self._certs_dir)
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
            return failed(exc)
        status = response.status_code
        ok = 200 <= status < 400 or status in reg.config.ignore_status_code
        kind = AttemptOutcome.SUCCESS if ok else AttemptOutcome.FAILURE
        return Outcome(status, response.body, ok, response.total_time_ms, kind)
