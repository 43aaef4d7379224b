"""What a destination is, and which outcomes count against its circuit (SPEC §18.1)."""

from __future__ import annotations

import pytest

from tasks_server.destinations import address, failed
from tasks_server.executor.runner import Outcome
from tasks_server.models.attempts import AttemptOutcome


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/x", "http://127.0.0.1:80"),
        ("https://Example.COM/x?y=1", "https://example.com:443"),
        ("http://user:pw@127.0.0.1:8080/x", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
    ],
)
def test_a_destination_is_scheme_host_and_port(url: str, expected: str) -> None:
    assert address(url) == expected


def outcome(kind: AttemptOutcome, status: int = 0, *, final: bool = False) -> Outcome:
    return Outcome(status, b"", kind is AttemptOutcome.SUCCESS, 1.0, kind, final=final)


@pytest.mark.parametrize(
    ("attempt", "counts"),
    [
        (outcome(AttemptOutcome.TRANSPORT, 500), True),
        (outcome(AttemptOutcome.TIMEOUT, 408), True),
        (outcome(AttemptOutcome.FAILURE, 503), True),
        (outcome(AttemptOutcome.FAILURE, 404), False),  # it answered
        (outcome(AttemptOutcome.SUCCESS, 200), False),
        (outcome(AttemptOutcome.TOO_LARGE, 422, final=True), False),
        (outcome(AttemptOutcome.TRANSPORT, 500, final=True), None),  # our own guard refused
        (outcome(AttemptOutcome.EXPIRED), None),  # never sent
    ],
)
def test_which_outcomes_count_against_a_circuit(attempt: Outcome, counts: bool | None) -> None:
    assert failed(attempt) is counts
