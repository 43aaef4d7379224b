"""How ``Runner`` classifies an attempt (SPEC §3.2, §9.2): status, outcome kind, error, final.

The transport is a double that answers or raises as told; the wire is proven elsewhere
(tests/integration/test_destination_guard.py runs the guard's refusal through a real Runner).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from tasks_server.executor.errors import (
    AttemptError,
    AttemptTimeout,
    DestinationRefused,
    ResponseTooLarge,
    TransportError,
)
from tasks_server.executor.options import Attempt
from tasks_server.executor.runner import Outcome, Runner
from tasks_server.executor.transport import CurlResponse
from tasks_server.models.attempts import AttemptOutcome
from tasks_server.models.queues import QueueRegistration

ATTEMPT = Attempt(
    queue_id="01Q",
    owner_id="01OWNER",
    retry_count=0,
    retry_limit=3,
    due=0,
    timeout_ms=1000,
    signing_secrets=(),
    sent_at_s=0,
)
REG = QueueRegistration.model_validate(
    {
        "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
        "config": {"ignoreStatusCode": [404]},
    },
    context={"now": 0},
)


class Scripted:
    def __init__(self, result: CurlResponse | AttemptError) -> None:
        self.result = result

    async def send(
        self, options: Sequence[tuple[int, Any]], *, max_body_bytes: int, pool: str
    ) -> CurlResponse:
        if isinstance(self.result, AttemptError):
            raise self.result
        return self.result


async def run(result: CurlResponse | AttemptError, attempt: Attempt = ATTEMPT) -> Outcome:
    return await Runner(Scripted(result), max_body_bytes=100, certs_dir=None).run(REG, attempt)


def answer(status: int) -> CurlResponse:
    return CurlResponse(status, b"body", 12.5, "http://127.0.0.1:9/x")


@pytest.mark.parametrize(
    ("status", "succeeded", "kind"),
    [
        (200, True, AttemptOutcome.SUCCESS),
        (302, True, AttemptOutcome.SUCCESS),
        (404, True, AttemptOutcome.SUCCESS),  # in ignoreStatusCode
        (400, False, AttemptOutcome.FAILURE),
        (503, False, AttemptOutcome.FAILURE),
    ],
)
async def test_http_answers(status: int, succeeded: bool, kind: AttemptOutcome) -> None:
    assert await run(answer(status)) == Outcome(status, b"body", succeeded, 12.5, kind, None, False)


@pytest.mark.parametrize(
    ("error", "status", "kind", "final"),
    [
        (AttemptTimeout("Operation timed out"), 408, AttemptOutcome.TIMEOUT, False),
        (ResponseTooLarge("Response body exceeds 100 bytes"), 422, AttemptOutcome.TOO_LARGE, False),
        (TransportError("Could not connect to server"), 500, AttemptOutcome.TRANSPORT, False),
        (
            DestinationRefused("destination 127.0.0.2 refused by DESTINATION_DENY"),
            500,
            AttemptOutcome.TRANSPORT,
            True,
        ),
    ],
)
async def test_failures(
    error: AttemptError, status: int, kind: AttemptOutcome, final: bool
) -> None:
    outcome = await run(error)
    assert outcome == Outcome(
        status, error.message.encode(), False, 0.0, kind, error.message, final
    )


@pytest.mark.parametrize(
    ("answered", "final"), [(200, True), (304, True), (503, False), (0, False)]
)
async def test_a_delivered_answer_too_large_is_final(answered: int, final: bool) -> None:
    outcome = await run(ResponseTooLarge("Response body exceeds 100 bytes", answered))
    assert (outcome.status_code, outcome.kind) == (422, AttemptOutcome.TOO_LARGE)
    assert (outcome.final, outcome.attempt_status) == (final, answered or 422)


async def test_a_deadline_passed_before_the_start_is_a_timeout() -> None:
    outcome = await run(answer(200), dataclasses.replace(ATTEMPT, timeout_ms=0))
    assert (outcome.status_code, outcome.kind, outcome.final) == (
        408,
        AttemptOutcome.TIMEOUT,
        False,
    )
    assert outcome.error == "timeoutAt passed before the attempt could start"
