"""Service routes: liveness, health, metrics and the API documentation."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse
from tasks_server.metrics import OVERDUE_MS
from tasks_server.models.queues import QueueState
from tasks_server.openapi import build_openapi
from tasks_server.services import services
from tasks_server.timeutil import now_ms

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
    svc.metrics.overdue.set(await svc.store.count_overdue(now=now_ms(), late_by=OVERDUE_MS))
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(build_openapi())


SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tasks Server API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""


async def swagger(request: Request) -> Response:
    """A Swagger UI page for /openapi.json (assets from a CDN), only when SWAGGER_UI=1."""
    if not services(request).settings.swagger_ui:
        return Response(status_code=404)
    return HTMLResponse(SWAGGER_PAGE)


routes = [
    Route("/status", status, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/swagger", swagger, methods=["GET"]),
]
