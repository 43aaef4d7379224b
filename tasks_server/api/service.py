"""Service routes: liveness, health and metrics."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse
from tasks_server.models.queues import QueueState
from tasks_server.services import services
from tasks_server.store import queues

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


async def metrics(request: Request) -> Response:
    """Prometheus text; task counts come from the database at scrape time."""
    svc = services(request)
    counts = await queues.count_by_state(svc.db)
    for state in QueueState:
        svc.metrics.tasks.labels(state=state.value).set(counts.get(state.value, 0))
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/status", status, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
