"""The retry schedule of a task, as a small pure object (no clock, no sleeping)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from tasks_server.models.queues import MAX_DELAY_MS, QueueConfig

Backoff = Literal["fixed", "linear", "exponential"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries a task gets and how long each waits.

    ``limit`` retries follow the first attempt. ``retry_at``, when set, is the absolute due
    time of the single retry and overrides ``delay_ms`` (the scheduler applies it).
    """

    limit: int
    interval: int
    backoff: Backoff
    max_interval: int | None = None
    retry_at: int | None = None
    jitter: bool = False

    @classmethod
    def from_config(cls, config: QueueConfig) -> RetryPolicy:
        # retryBackoff (our extension) wins; else the original's retryExponential (×1, ×2, ×3…).
        backoff = config.retry_backoff or ("linear" if config.retry_exponential else "fixed")
        return cls(
            config.retry,
            config.retry_interval,
            backoff,
            config.retry_max_interval,
            config.retry_at,
            config.retry_jitter,
        )

    def delay_ms(self, n: int) -> int:
        """The wait before retry number `n` (1-based), capped by ``max_interval``."""
        if n < 1:
            raise ValueError(f"retry numbers start at 1, got {n}")
        if self.backoff == "fixed":
            delay = self.interval
        elif self.backoff == "linear":
            delay = self.interval * n
        else:
            delay = self.interval << min(n - 1, 64)  # beyond 2^64 the cap below applies anyway
        # The absolute ceiling keeps due times within SQLite's 64-bit integers.
        return min(delay, self.max_interval or MAX_DELAY_MS, MAX_DELAY_MS)

    def wait_ms(self, n: int, *, retry_after_ms: int | None = None, rng: random.Random) -> int:
        """The wait actually used before retry `n`: jittered over [delay/2, delay] when asked,
        and never shorter than what the target's Retry-After asked for."""
        delay = self.delay_ms(n)
        if self.jitter:
            delay = round(rng.uniform(delay / 2, delay))
        return max(delay, retry_after_ms or 0)


RETRY_AFTER_CAP_MS = 86_400_000  # a day: a target cannot park a task for longer
RETRY_AFTER_STATUSES = (429, 503)


def retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """A Retry-After header (delay in seconds, or an HTTP date) as ms from `now_ms`, capped at
    a day; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        wait = int(value) * 1000
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        wait = round(when.timestamp() * 1000) - now_ms
    return max(0, min(wait, RETRY_AFTER_CAP_MS))
