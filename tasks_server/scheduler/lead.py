"""How far ahead of its time an attempt's start is written, so its request leaves on time.

An attempt's row is committed before its request is sent (SPEC §3), and that write is a
commit, a round trip more on PostgreSQL: on a loaded database it takes tens of milliseconds,
and every one of them made the request late. So the producer starts an attempt up to the
recent latency of that write ahead of its time, and the runner sends its request once its
time has come, never before: the write is behind it by then.

The lead is the peak of the writes measured lately, halving every `HALF_LIFE_S` without a
higher one, at most `MAX_LEAD_MS`: a quiet SQLite box keeps a millisecond or two, a loaded
PostgreSQL tens. A client's change landing within the lead aborts the attempt (ABORTED,
nothing sent) instead of finding it not started yet.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_LEAD_MS = 50
HALF_LIFE_S = 10.0


class StartLead:
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._peak_ms = 0.0
        self._peak_at = monotonic()

    def ms(self) -> int:
        """The lead now, whole milliseconds rounded up."""
        return math.ceil(self._decayed(self._monotonic()))

    async def timed(self, write: Awaitable[T]) -> T:
        """Await a start's write, taking its latency into the lead."""
        began = self._monotonic()
        result = await write
        ended = self._monotonic()
        took_ms = min(MAX_LEAD_MS, (ended - began) * 1000)
        if took_ms >= self._decayed(ended):
            self._peak_ms, self._peak_at = took_ms, ended
        return result

    def _decayed(self, now: float) -> float:
        halvings = (now - self._peak_at) / HALF_LIFE_S
        return self._peak_ms * math.exp2(-halvings)
