"""How long and how big each measurement is: the full run, ``--quick`` and ``--tiny``."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    connections: int  # load generator connections (one owner each)
    warmup_s: float
    duration_s: float
    ceiling_s: float
    exec_tasks: int
    raw_concurrency: int
    waiting: int  # tasks waiting far ahead during the lateness runs
    rest_tasks: int
    rest_gap_ms: int
    load_s: int  # seconds of 1,000 tasks a second falling due
    burst: int
    scale_waiting: int
    pg_burst: int  # --postgres: tasks due at one instant
    pg_load_s: int  # --postgres: seconds of 1,000 tasks a second falling due
    pg_lead_ms: int = 2_500  # --postgres: seeded tasks fall due this long after seeding
    pg_rounds: int = 1  # --postgres: rounds of the burst on every configuration (median)


FULL = Profile(
    name="full",
    connections=32,
    warmup_s=1.0,
    duration_s=10.0,
    ceiling_s=5.0,
    exec_tasks=20_000,
    raw_concurrency=1_000,
    waiting=100_000,
    rest_tasks=200,
    rest_gap_ms=50,
    load_s=15,
    burst=5_000,
    scale_waiting=1_000_000,
    pg_burst=10_000,
    pg_load_s=10,
    pg_rounds=3,
)
QUICK = Profile(
    name="quick",
    connections=32,
    warmup_s=0.5,
    duration_s=2.5,
    ceiling_s=1.5,
    exec_tasks=5_000,
    raw_concurrency=1_000,
    waiting=100_000,
    rest_tasks=40,
    rest_gap_ms=50,
    load_s=3,
    burst=1_000,
    scale_waiting=100_000,
    pg_burst=2_000,
    pg_load_s=3,
)
# Only proves the bench still runs end to end (the test suite uses it): figures mean nothing.
TINY = replace(
    QUICK,
    name="tiny",
    connections=4,
    warmup_s=0.2,
    duration_s=0.5,
    ceiling_s=0.5,
    exec_tasks=200,
    waiting=1_000,
    rest_tasks=5,
    load_s=1,
    burst=100,
    scale_waiting=1_000,
    pg_burst=200,
    pg_load_s=1,
    pg_lead_ms=500,
    pg_rounds=2,  # so the test suite runs the rounds too
)
