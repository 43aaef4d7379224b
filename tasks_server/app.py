"""The application factory: routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tasks_server import logs, startup
from tasks_server.api import errors, owners, service
from tasks_server.api import queues as queue_routes
from tasks_server.api.auth import Authenticator
from tasks_server.api.security import SecurityHeaders
from tasks_server.api.throttle import Throttle
from tasks_server.backup import BackupScheduler, lock_path_for
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.runner import Runner
from tasks_server.metrics import Metrics
from tasks_server.scheduler import Scheduler
from tasks_server.services import Services
from tasks_server.settings import Settings, load_settings
from tasks_server.store import queues
from tasks_server.store.db import Database

SHUTDOWN_GRACE_S = 10.0


def create_app_from_env() -> Starlette:
    """The app of one cluster worker: uvicorn spawns each worker process and imports this."""
    settings = load_settings()
    logs.configure_from(settings)
    return create_app(settings)


def create_app(settings: Settings) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        # Whatever opened is closed also when a later step fails: an open database keeps
        # non-daemon threads alive, and the process would linger without serving.
        async with contextlib.AsyncExitStack() as stack:
            startup.create_database_file(settings.path_sqlite)
            db = Database(settings.path_sqlite)
            await db.open()
            stack.push_async_callback(db.close)
            codec = TaskCodec(await startup.checked_cipher(db, settings))
            if not settings.cluster_mode:
                # Alone on this database: every lease is left over from a stopped process.
                await queues.release_all_leases(db)
            transport = CurlTransport()
            stack.push_async_callback(transport.aclose)
            scheduler = Scheduler(
                db,
                codec,
                Runner(
                    transport,
                    max_body_bytes=settings.max_size_data_response,
                    certs_dir=settings.certs_dir,
                ),
                ConnectivityGate(
                    settings.connectivity_hostname, settings.connectivity_check_interval
                ),
                metrics,
                cluster=settings.cluster_mode,
            )
            await scheduler.start()
            stack.push_async_callback(scheduler.stop, SHUTDOWN_GRACE_S)
            backups = BackupScheduler(
                settings, metrics, lock_path=lock_path_for(settings.path_sqlite)
            )
            backups.start()
            stack.push_async_callback(backups.stop)
            yield {
                "services": Services(
                    settings=settings,
                    db=db,
                    auth=Authenticator(db),
                    codec=codec,
                    scheduler=scheduler,
                    metrics=metrics,
                )
            }

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
    return Starlette(
        routes=[*service.routes, *owners.routes, *queue_routes.routes],
        middleware=middleware,
        exception_handlers={
            errors.ApiError: errors.on_api_error,
            ValidationError: errors.on_validation_error,
            HTTPException: errors.on_http_exception,
        },
        lifespan=lifespan,
    )
