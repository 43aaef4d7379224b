"""The application factory: routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tasks_server import logs
from tasks_server.api import errors, owners, service, ui
from tasks_server.api import queues as queue_routes
from tasks_server.api.auth import Authenticator
from tasks_server.api.security import SecurityHeaders
from tasks_server.api.throttle import Throttle
from tasks_server.backup import BackupScheduler, lock_path_for
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.crypto import Cipher
from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.runner import Runner
from tasks_server.metrics import Metrics
from tasks_server.retention import Retention
from tasks_server.scheduler import Scheduler
from tasks_server.services import Services
from tasks_server.settings import Settings, load_settings
from tasks_server.signing_keys import SigningKeys
from tasks_server.store.sqlite import SqliteStore

SHUTDOWN_GRACE_S = 10.0


def create_app_from_env() -> Starlette:
    """The app of one cluster worker: uvicorn spawns each worker process and imports this."""
    settings = load_settings()
    logs.configure(enabled=settings.log, tz=settings.log_tz or settings.tz)
    return create_app(settings)


def create_app(settings: Settings) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        owners.warn_if_registration_open(settings)
        store = SqliteStore(settings.path_sqlite)
        await store.open()
        if not settings.cluster_mode:
            # Alone on this database: every lease is left over from a stopped process.
            await store.release_all()
        cipher = Cipher.for_database(settings.cipher_key, settings.path_sqlite)
        codec = TaskCodec(cipher)
        transport = CurlTransport(guard=settings.destination_guard)
        signing_keys = SigningKeys(store, cipher)
        scheduler = Scheduler(
            store,
            codec,
            Runner(
                transport,
                max_body_bytes=settings.max_size_data_response,
                certs_dir=settings.certs_dir,
            ),
            ConnectivityGate(settings.connectivity_hostname, settings.connectivity_check_interval),
            metrics,
            signing_keys=signing_keys.for_owner,
            cluster=settings.cluster_mode,
            max_in_flight_per_owner=settings.max_in_flight_per_owner,
            max_attempts_kept=settings.max_attempts_kept,
        )
        await scheduler.start()
        backups = BackupScheduler(settings, metrics, lock_path=lock_path_for(settings.path_sqlite))
        backups.start()
        retention = Retention(store, keep_ms=settings.retention_finished_ms)
        retention.start()
        try:
            yield {
                "services": Services(
                    settings=settings,
                    store=store,
                    auth=Authenticator(store),
                    codec=codec,
                    scheduler=scheduler,
                    metrics=metrics,
                    signing_keys=signing_keys,
                )
            }
        finally:
            await retention.stop()
            await backups.stop()
            await scheduler.stop(SHUTDOWN_GRACE_S)
            await transport.aclose()
            await store.close()

    middleware = [Middleware(SecurityHeaders)]
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
    return Starlette(
        routes=[*service.routes, *ui.routes, *owners.routes, *queue_routes.routes],
        middleware=middleware,
        exception_handlers={
            errors.ApiError: errors.on_api_error,
            ValidationError: errors.on_validation_error,
            HTTPException: errors.on_http_exception,
            Exception: errors.on_unexpected,
        },
        lifespan=lifespan,
    )
