"""The application factory: routes, middleware and the lifespan that opens the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tasks_server.api import errors, owners, service
from tasks_server.api.auth import Authenticator
from tasks_server.api.security import SecurityHeaders
from tasks_server.api.throttle import Throttle
from tasks_server.services import Services
from tasks_server.settings import Settings
from tasks_server.store.db import Database


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        db = Database(settings.path_sqlite)
        await db.open()
        try:
            yield {"services": Services(settings=settings, db=db, auth=Authenticator(db))}
        finally:
            await db.close()

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
            )
        )
    return Starlette(
        routes=[*service.routes, *owners.routes],
        middleware=middleware,
        exception_handlers={
            errors.ApiError: errors.on_api_error,
            ValidationError: errors.on_validation_error,
            HTTPException: errors.on_http_exception,
            Exception: errors.on_unexpected,
        },
        lifespan=lifespan,
    )
