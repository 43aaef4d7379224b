"""Destination health (SPEC §18.1): where an attempt goes, what its outcome says of that
destination, and this process's view of the circuits that are not closed.

A destination is owner + scheme + host + port. Its id is a keyed digest of owner and address
(the address is part of a sealed URL: the store keeps it sealed). A circuit opens after
`CIRCUIT_FAILURES` failures in a row — no answer, a timeout or a 5xx — and its tasks then wait,
spending neither attempts nor retries, until one probe attempt closes it or keeps it open
twice as long (to `CAP_MS`). The view is read at each claim, so a circuit another node opened
is seen within a poll; the store settles races (`TaskStore.take_probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tasks_server.models.attempts import AttemptOutcome

if TYPE_CHECKING:
    from tasks_server.executor.runner import Outcome

CAP_MS = 600_000  # the longest a circuit stays open between probes
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    address: str  # scheme://host:port


def address(url: str) -> str:
    """The destination of `url`: its scheme, host (lower case) and port (the default one
    spelled out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}"


def failed(outcome: Outcome) -> bool | None:
    """Whether an attempt's outcome counts against its destination (True), shows it answering
    (False), or says nothing of it (None: never sent, or refused by our own guard)."""
    kind = outcome.kind
    if kind is AttemptOutcome.EXPIRED or (outcome.final and kind is AttemptOutcome.TRANSPORT):
        return None
    if kind in (AttemptOutcome.TRANSPORT, AttemptOutcome.TIMEOUT):
        return True
    return kind is AttemptOutcome.FAILURE and outcome.status_code >= 500


class Circuits:
    """The circuits not closed as this process last read them (id → open until; past:
    half-open, one probe may go), and the destinations that failed here since they last
    answered: their circuit may have opened since that read, so it is read again."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._suspects: set[str] = set()

    def update(self, circuits: dict[str, int]) -> None:
        self._open = circuits

    def open_until(self, destination_id: str) -> int | None:
        return self._open.get(destination_id)

    def failed(self, destination_id: str) -> None:
        self._suspects.add(destination_id)

    def answered(self, destination_id: str) -> None:
        self._suspects.discard(destination_id)

    def suspect(self, destination_id: str) -> bool:
        return destination_id in self._suspects
