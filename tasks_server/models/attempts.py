"""Attempts of a task (SPEC §9.2): how each ended, and the listing's rows."""

from __future__ import annotations

from enum import StrEnum


class AttemptOutcome(StrEnum):
    IN_FLIGHT = "IN_FLIGHT"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"  # the target answered 4xx/5xx
    TIMEOUT = "TIMEOUT"
    TOO_LARGE = "TOO_LARGE"
    TRANSPORT = "TRANSPORT"  # no answer: refused, DNS, TLS, the destination guard
    ABORTED = "ABORTED"  # pause, revoke, delete or edit while in flight
    INTERRUPTED = "INTERRUPTED"  # its process died; closed when the task was claimed again
