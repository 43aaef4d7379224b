"""Prometheus metrics, one registry per app so tests and apps never share counters.

In cluster mode the parent points PROMETHEUS_MULTIPROC_DIR at a private folder before the
workers start; each worker then keeps its values in files there, and whichever worker answers
a scrape reports all of them: counters and histograms summed, gauges as their mode says.
The answering process adds its own ``process_*`` series and ``tasks_build_info``.

No ``_created`` samples are exposed: they double the series for a value (the process start)
that ``process_start_time_seconds`` already gives. They are filtered out at scrape time rather
than with prometheus-client's ``disable_created_metrics()``, a process-wide switch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_server import __version__

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

OVERDUE_MS = 5_000
# Outcomes of attempts the target never answered: their status code is the server's report.
UNANSWERED = frozenset({"TRANSPORT", "TIMEOUT", "EXPIRED"})
_LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_FLOW_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


UNMATCHED_ROUTE = "unmatched"


class _BuildInfo(Collector):
    """``tasks_build_info{version}`` 1: which release answers, whatever the process mode."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tasks_build_info", "The running tasks-server version (always 1)", labels=["version"]
        )
        family.add_metric([__version__], 1)
        yield family


class _WithoutCreated(Collector):
    """A registry's families without their ``<name>_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            created = f"{family.name}_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family


def _process_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """The series every answering process adds of its own."""
    ProcessCollector(registry=registry)
    registry.register(_BuildInfo())
    return registry


class Metrics:
    def __init__(self) -> None:
        self.registry = _process_registry(CollectorRegistry(auto_describe=True))
        r = self.registry
        self.lateness = Histogram(
            "tasks_scheduling_lateness_seconds",
            "Start of an attempt minus its due time",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.flow_wait = Histogram(
            "tasks_flow_control_wait_seconds",
            "Start of an attempt of a task with flow control minus its due time: the wait its "
            "key's parallelism and rate imposed, plus the scheduling lateness",
            buckets=_FLOW_WAIT_BUCKETS,
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
        self.callbacks_queued = Counter(
            "tasks_callbacks_queued",
            "Callback tasks stored with an outcome, by kind (success, failure)",
            ["kind"],
            registry=r,
        )
        self.callbacks_finished = Counter(
            "tasks_callbacks_finished",
            "Callback tasks ended, by outcome (SUCCESS, ERROR)",
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
        self.oldest_overdue = Gauge(
            "tasks_oldest_overdue_seconds",
            "How long the longest-waiting of those tasks has been due (0: none)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.circuits_open = Gauge(
            "tasks_circuit_open",
            "Destinations whose circuit is open or half-open: their tasks wait",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.in_flight = Gauge(
            "tasks_attempts_in_flight", "Attempts in flight", registry=r, multiprocess_mode="sum"
        )
        self.http_requests = Counter(
            "tasks_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self._attempt_counters: dict[tuple[str, int], Counter] = {}
        self._request_counters: dict[tuple[str, str, int], Counter] = {}

    def count_attempt(self, *, outcome: str, status_code: int) -> None:
        """Count one attempt by outcome (SPEC §9.2) and status class, ``none`` for an attempt
        the target never answered (SPEC §19.5: the 500 it reports is not a 5xx answer);
        `labels()` costs microseconds, so its children are kept."""
        key = (outcome, status_code // 100)
        counter = self._attempt_counters.get(key)
        if counter is None:
            answered = outcome not in UNANSWERED
            status_class = f"{key[1]}xx" if answered else "none"
            counter = self.attempts.labels(outcome=outcome, status_class=status_class)
            self._attempt_counters[key] = counter
        counter.inc()

    def count_request(self, route: str, method: str, status: int) -> None:
        """One served request; children kept as for attempts (this runs on every request)."""
        key = (route, method, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self.http_requests.labels(route=route, method=method, status=str(status))
            self._request_counters[key] = counter
        counter.inc()

    def exposition(self) -> bytes:
        """The text format: this app's registry, or every worker's values in cluster mode."""
        if not os.environ.get(MULTIPROC_DIR_ENV):
            return generate_latest(_WithoutCreated(self.registry))
        registry = _process_registry(CollectorRegistry())
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(_WithoutCreated(registry))


class RequestMetrics:
    """Pure ASGI middleware counting requests by the template of the route that served them.

    The router records the matched route in the scope, so nothing is matched twice; a path
    that matches no route counts as ``unmatched``, which keeps the label set bounded.
    An exception escaping the app counts as the 500 the outer error handler will send.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self.metrics.count_request(template, scope["method"], status)
