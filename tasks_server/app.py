"""The application factory: routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ExceptionHandler
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tasks_server import exposure, gc_policy, logs, startup
from tasks_server.api import batches, destinations, errors, owners, service, ui
from tasks_server.api import queues as queue_routes
from tasks_server.api import schedules as schedule_routes
from tasks_server.api import stats as stats_routes
from tasks_server.api.auth import Authenticator
from tasks_server.api.security import SecurityHeaders
from tasks_server.api.throttle import Throttle
from tasks_server.backup import BackupScheduler
from tasks_server.clock import StoreClock
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.runner import Runner
from tasks_server.metrics import Metrics, RequestMetrics
from tasks_server.retention import Retention
from tasks_server.scheduler import Scheduler
from tasks_server.schedules import ScheduleRunner
from tasks_server.service import Service
from tasks_server.services import Services
from tasks_server.settings import Settings, load_settings
from tasks_server.signing_keys import SigningKeys
from tasks_server.store import build_store
from tasks_server.store.base import StoreUnavailable, TaskStore
from tasks_server.timeutil import now_ms
from tasks_server.tracing import Tracing

SHUTDOWN_GRACE_S = 10.0

_ROUTES = [
    *service.routes,
    *ui.routes,
    *owners.routes,
    *batches.routes,
    *queue_routes.routes,
    *schedule_routes.routes,
    *destinations.routes,
    *stats_routes.routes,
]


def create_app_from_env() -> Starlette:
    """The app of one cluster worker: uvicorn spawns each worker process and imports this."""
    settings = load_settings()
    logs.configure_from(settings)
    app = create_app(settings)
    gc_policy.tune_for_serving()
    return app


def create_app(settings: Settings) -> Starlette:
    """The app serving ``settings``: its services start with the lifespan (see ``_start``)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        exposure.warn_if_exposed(settings)
        # Whatever opened is closed also when a later step fails: an open database keeps
        # non-daemon threads alive, and the process would linger without serving.
        async with contextlib.AsyncExitStack() as stack:
            yield {"services": await _start(stack, settings, metrics)}

    return Starlette(
        routes=_ROUTES,
        middleware=_middleware(settings, metrics),
        exception_handlers=_exception_handlers(),
        lifespan=lifespan,
    )


def _exception_handlers() -> dict[Any, ExceptionHandler]:
    """Each app's own: ``OnUnavailable`` keeps the state of its outage log."""
    return {
        errors.ApiError: errors.on_api_error,
        ValidationError: errors.on_validation_error,
        HTTPException: errors.on_http_exception,
        StoreUnavailable: errors.OnUnavailable(),
    }


def _middleware(settings: Settings, metrics: Metrics) -> list[Middleware]:
    middleware = [Middleware(SecurityHeaders), Middleware(errors.RequestGuard)]
    if settings.forwarded_allow_ips:
        middleware.append(
            Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
        )
    if settings.throttle_enabled:
        middleware.append(
            Middleware(
                Throttle,
                limit=settings.max_throttle_request,
                window_ms=settings.max_throttle_time_window,
                on_throttled=metrics.throttled.inc,
            )
        )
    # Innermost, so it sees the route the router matched (429s are counted by Throttle).
    middleware.append(Middleware(RequestMetrics, metrics=metrics))
    return middleware


async def _start(
    stack: contextlib.AsyncExitStack, settings: Settings, metrics: Metrics
) -> Services:
    """Start every service in order, each pushing its stop on ``stack``: they stop in the
    reverse order, the store last."""
    store = build_store(settings)
    await store.open()
    stack.push_async_callback(store.close)
    cipher = await startup.checked_cipher(store, settings)
    codec = TaskCodec(cipher)
    clock = await _clock(stack, store)
    # Where other processes may be running, leases only ever expire.
    shared = settings.cluster_mode or store.shared
    if not shared:
        # Alone on this database: every lease is left over from a stopped process.
        await store.release_all()
    signing_keys = SigningKeys(store, cipher)
    # Stopped after the scheduler, whose last attempts end spans: their export is flushed.
    tracing = Tracing.from_endpoint(settings.otel_exporter_otlp_endpoint)
    stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
    scheduler = await _start_scheduler(
        stack, settings, metrics, store, codec, signing_keys, tracing, shared=shared, clock=clock
    )
    _run(stack, BackupScheduler(store, settings, metrics))
    _run(stack, Retention(store, keep_ms=settings.retention_finished_ms, clock=clock))
    schedules = ScheduleRunner(
        store,
        codec,
        scheduler.changed,
        metrics,
        queue_limit=settings.max_tasks_in_queue,
        clock=clock,
    )
    _run(stack, schedules)
    return Services(
        settings=settings,
        store=store,
        auth=Authenticator(store),
        codec=codec,
        scheduler=scheduler,
        metrics=metrics,
        signing_keys=signing_keys,
        schedules=schedules,
        tracing=tracing,
        clock=clock,
    )


async def _clock(stack: contextlib.AsyncExitStack, store: TaskStore) -> Callable[[], int]:
    if not store.shared:
        return now_ms
    # Nodes agree on the database's clock, not on their own.
    store_clock = StoreClock(store.now)
    await store_clock.sync()
    stack.push_async_callback(store_clock.aclose)
    return store_clock


async def _start_scheduler(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    metrics: Metrics,
    store: TaskStore,
    codec: TaskCodec,
    signing_keys: SigningKeys,
    tracing: Tracing,
    *,
    shared: bool,
    clock: Callable[[], int],
) -> Scheduler:
    """The transport, then the scheduler sending through it (which stops first), then the
    store's change notices waking it."""
    transport = CurlTransport(guard=settings.destination_guard)
    stack.push_async_callback(transport.aclose)
    scheduler = Scheduler(
        store,
        codec,
        Runner(
            transport,
            max_body_bytes=settings.max_size_data_response,
            certs_dir=settings.certs_dir,
            signers=signing_keys.signer,
        ),
        ConnectivityGate(settings.connectivity_hostname, settings.connectivity_check_interval),
        metrics,
        signing_keys=signing_keys.for_owner,
        tracing=tracing,
        cluster=shared,
        max_in_flight_per_owner=settings.max_in_flight_per_owner,
        max_attempts_kept=settings.max_attempts_kept,
        circuit_failures=settings.circuit_failures,
        circuit_open_ms=settings.circuit_open_ms,
        lease_ms=store.lease_ms,
        clock=clock,
    )
    await scheduler.start()
    stack.push_async_callback(scheduler.stop, SHUTDOWN_GRACE_S)
    await store.listen(scheduler.notice, scheduler.resync)
    return scheduler


def _run(stack: contextlib.AsyncExitStack, service: Service) -> None:
    service.start()
    stack.push_async_callback(service.stop)
