"""``GET /v1/stats`` (SPEC §19.4): an owner's overview of a bounded window."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks_server.store.stats import LATENESS_BOUNDS_MS

WINDOWS_MS = {"15m": 900_000, "1h": 3_600_000, "6h": 21_600_000, "24h": 86_400_000}
TOP_DESTINATIONS = 5


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Literal["15m", "1h", "6h", "24h"] = Field(
        "1h", description="How far back: 15m, 1h, 6h or 24h"
    )


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MinuteOut(_Out):
    minute: int = Field(description="The minute's start (epoch ms)")
    outcomes: dict[str, int] = Field(description="Attempts that ended in it, by outcome")


class LatenessOut(_Out):
    attempts: int = Field(description="Attempts in the window")
    p50_ms: int = Field(description="Half the attempts started at most this late (ms)")
    p99_ms: int = Field(description="99 % of the attempts started at most this late (ms)")


class DestinationOut(_Out):
    destination: str = Field(description="scheme://host:port")
    failures: int = Field(description="Attempts to it that failed (4xx/5xx, timeout, transport)")


class StatsOut(_Out):
    window: str = Field(description="The window asked for")
    from_: int = Field(alias="from", description="The window's start (epoch ms)")
    to: int = Field(description="Its end: now (epoch ms)")
    attempts_per_minute: list[MinuteOut] = Field(description="Minutes with attempts, oldest first")
    lateness: LatenessOut = Field(description="How late attempts started")
    top_failing_destinations: list[DestinationOut] = Field(
        description=f"The {TOP_DESTINATIONS} destinations with the most failures"
    )
    states: dict[str, int] = Field(description="The owner's tasks by state (all of them)")


def percentile(buckets: dict[int, int], q: float) -> int:
    """The bound under which a `q` share of the counted attempts fall (0 when none)."""
    total = sum(buckets.values())
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= q * total:
            return LATENESS_BOUNDS_MS[min(bucket, len(LATENESS_BOUNDS_MS) - 1)]
    return 0
