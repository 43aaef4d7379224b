"""Which of a flow key's waiting tasks a claim may lease, and when each may start.

Both engines call `plan` inside their claim transaction while holding the key's `flows` row
lock, so claims of one key never overlap, in one process or across nodes. Parallelism counts
the key's live leases: a task is leased from its claim until its outcome is written, so
attempts in flight never outnumber leases. The rate hands out start times spaced by
1/rate, one after another, from the key's `next_start_at`; a task is leased only when its
start falls within the claim's horizon, so the waiting ones stay unleased, in due order,
for whichever process claims next. Nothing waits by failing.

Tasks sharing a key should declare the same limits; when they differ, those of the
earliest waiting task apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tasks_server.store.base import Due


@dataclass(frozen=True, slots=True)
class Candidate:
    """A waiting task of the key, in due order, with the limits it declared."""

    due: Due
    parallelism: int | None
    rate: float | None


@dataclass(frozen=True, slots=True)
class Plan:
    leased: list[Due]  # with `start_at` set where the rate delays them
    next_start_at: int  # the key's next free start


def plan(
    candidates: Sequence[Candidate], *, busy: int, next_start_at: int, now: int, horizon: int
) -> Plan:
    """Lease the first candidates the key's limits allow; `busy` is its live leases."""
    if not candidates:
        return Plan([], next_start_at)
    first = candidates[0]
    room = len(candidates)
    if first.parallelism is not None:
        room = max(0, min(room, first.parallelism - busy))
    leased: list[Due] = []
    for candidate in candidates[:room]:
        due = candidate.due
        if first.rate is None:
            leased.append(due)
            continue
        start = max(due.estimate_execution_at, next_start_at, now)
        if start > horizon:
            break
        spacing = spacing_ms(first.rate)
        leased.append(replace(due, start_at=start, spacing_ms=spacing))
        next_start_at = start + spacing
    return Plan(leased, next_start_at)


def spacing_ms(rate: float) -> int:
    """Milliseconds between two starts at `rate` per second, rounded up: never faster."""
    return max(1, math.ceil(1000 / rate))
