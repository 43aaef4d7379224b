"""The retry schedule of a task, as a small pure object (no clock, no sleeping)."""

from __future__ import annotations

from dataclasses import dataclass
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

    @classmethod
    def from_config(cls, config: QueueConfig) -> RetryPolicy:
        # retryBackoff (our extension) wins; else the original's retryExponential (×1, ×2, ×3…).
        backoff = config.retry_backoff or ("linear" if config.retry_exponential else "fixed")
        return cls(
            config.retry, config.retry_interval, backoff, config.retry_max_interval, config.retry_at
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
