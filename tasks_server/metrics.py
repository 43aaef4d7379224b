"""Prometheus metrics, one registry per app so tests and apps never share counters.

In cluster mode the parent points PROMETHEUS_MULTIPROC_DIR at a private folder before the
workers start; each worker then keeps its values in files there, and whichever worker answers
a scrape reports all of them: counters and histograms summed, gauges as their mode says.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

OVERDUE_MS = 5_000
_LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lateness = Histogram(
            "tasks_scheduling_lateness_seconds",
            "Start of an attempt minus its due time",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.attempt_duration = Histogram(
            "tasks_attempt_duration_seconds",
            "Duration of attempts",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "tasks_attempts", "Attempts by outcome", ["outcome", "status_class"], registry=r
        )
        self.registrations = Counter("tasks_registrations", "Tasks registered", registry=r)
        self.throttled = Counter(
            "tasks_throttled_requests", "Requests refused with 429", registry=r
        )
        self.backups = Counter("tasks_backups", "Backups by outcome", ["outcome"], registry=r)
        self.last_backup = Gauge(
            "tasks_last_successful_backup_timestamp_seconds",
            "Time of the last good backup",
            registry=r,
            multiprocess_mode="max",
        )
        self.schedule_fires = Counter(
            "tasks_schedule_fires",
            "Schedule fire times by outcome (fired, skipped for a full queue, duplicate)",
            ["outcome"],
            registry=r,
        )
        self.schedules = Gauge(
            "tasks_schedules_active",
            "ACTIVE schedules",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # Read from the database at scrape time: the latest reading is the truth.
        self.tasks = Gauge(
            "tasks_by_state",
            "Tasks by state",
            ["state"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.overdue = Gauge(
            "tasks_overdue",
            f"RUNNING tasks due more than {OVERDUE_MS // 1000} s ago (not started, or in flight)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.in_flight = Gauge(
            "tasks_attempts_in_flight", "Attempts in flight", registry=r, multiprocess_mode="sum"
        )
        self._attempt_counters: dict[tuple[str, int], Counter] = {}

    def count_attempt(self, *, outcome: str, status_code: int) -> None:
        """Count one attempt by outcome (SPEC §9.2) and status class; `labels()` costs
        microseconds, so its children are kept."""
        key = (outcome, status_code // 100)
        counter = self._attempt_counters.get(key)
        if counter is None:
            counter = self.attempts.labels(outcome=outcome, status_class=f"{key[1]}xx")
            self._attempt_counters[key] = counter
        counter.inc()

    def exposition(self) -> bytes:
        """The text format: this app's registry, or every worker's values in cluster mode."""
        if not os.environ.get(MULTIPROC_DIR_ENV):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
