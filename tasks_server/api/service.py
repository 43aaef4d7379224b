"""Service routes: liveness, health, metrics and the API documentation."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse
from tasks_server.api.ui import PAGE_MEDIA_TYPE, UI_DIR, Assets, file_response
from tasks_server.metrics import OVERDUE_MS
from tasks_server.models.queues import QueueState
from tasks_server.openapi import build_openapi
from tasks_server.services import services

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 2.0


async def status(request: Request) -> Response:
    return PlainTextResponse("OK")


async def health(request: Request) -> Response:
    svc = services(request)
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            await svc.store.ping()
    except Exception as exc:
        log.warning("health check failed: %s", exc, extra={"action": "health"})
        return JSONResponse({"status": "error", "database": "unavailable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text; task counts come from the database at scrape time."""
    svc = services(request)
    counts = await svc.store.count_by_state()
    svc.metrics.schedules.set(await svc.store.count_schedules())
    for state in QueueState:
        svc.metrics.tasks.labels(state=state.value).set(counts.get(state.value, 0))
    now = svc.clock()
    overdue = await svc.store.overdue(now=now, late_by=OVERDUE_MS)
    svc.metrics.overdue.set(overdue.count)
    oldest = 0 if overdue.oldest_due is None else max(0, now - overdue.oldest_due)
    svc.metrics.oldest_overdue.set(oldest / 1000)
    svc.metrics.circuits_open.set(await svc.store.count_open_circuits())
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(build_openapi())


SWAGGER_DIR = UI_DIR / "swagger"
_swagger_assets = Assets(SWAGGER_DIR, SWAGGER_DIR / "vendor")


async def swagger(request: Request) -> Response:
    """A Swagger UI page for /openapi.json, only when SWAGGER_UI=1.

    The viewer ships in the package (``scripts/vendor-swagger-ui`` refreshes it), so the page
    renders with no network, under the same CSP as the dashboard.
    """
    if not services(request).settings.swagger_ui:
        return Response(status_code=404)
    return file_response(SWAGGER_DIR / "index.html", PAGE_MEDIA_TYPE)


async def swagger_asset(request: Request) -> Response:
    if not services(request).settings.swagger_ui:
        return Response(status_code=404)
    return _swagger_assets.response(request.path_params["name"])


routes = [
    Route("/status", status, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/swagger", swagger, methods=["GET"]),
    Route("/swagger/{name}", swagger_asset, methods=["GET"]),
]
