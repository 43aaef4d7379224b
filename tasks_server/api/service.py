"""Service routes: liveness and health."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse
from tasks_server.services import services

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 2.0


async def status(request: Request) -> Response:
    return PlainTextResponse("OK")


async def health(request: Request) -> Response:
    svc = services(request)
    try:
        await asyncio.wait_for(svc.db.fetchone("SELECT 1"), HEALTH_TIMEOUT_S)
    except Exception as exc:
        log.warning("health check failed: %s", exc, extra={"action": "health"})
        return JSONResponse({"status": "error", "database": "unavailable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


routes = [
    Route("/status", status, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]
