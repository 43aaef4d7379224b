"""Destination routes (SPEC §18.1): the owner's destinations with their circuits, and a reset.

Only destinations an attempt failed to have a circuit row: a destination that always answered
has nothing to show."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tasks_server.api.errors import JSONResponse, NotFound
from tasks_server.models.destinations import CircuitState, DestinationListQuery, DestinationOut
from tasks_server.services import Services, services
from tasks_server.store.base import DestinationRow

log = logging.getLogger(__name__)


def _out(svc: Services, row: DestinationRow, now: int) -> dict[str, Any]:
    address = urlsplit(svc.codec.open(row.address, row.id, "address").decode())
    error = None
    if row.last_error is not None:
        error = svc.codec.open(row.last_error, row.id, "last_error").decode()
    state = CircuitState.CLOSED
    if row.open_until:
        state = CircuitState.OPEN if row.open_until > now else CircuitState.HALF_OPEN
    out = DestinationOut(
        id=row.id,
        scheme=address.scheme,
        host=address.hostname or "",
        port=address.port or 0,
        state=state,
        consecutive_failures=row.failures,
        open_until=row.open_until,
        last_error=error,
        updated_at=row.updated_at,
    )
    return out.model_dump(by_alias=True)


async def list_destinations(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    query = DestinationListQuery.model_validate(dict(request.query_params))
    rows = await svc.store.destinations(owner_id, limit=query.limit, offset=query.offset)
    now = await svc.store.now()
    return JSONResponse([_out(svc, row, now) for row in rows])


async def reset(request: Request) -> Response:
    """Close the circuit: its waiting tasks are claimable at once."""
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    destination_id = request.path_params["id"]
    now = await svc.store.now()
    row = await svc.store.reset_destination(owner_id, destination_id, now=now)
    if row is None:
        raise NotFound()
    svc.scheduler.resync()
    fields = {"action": "circuit_reset", "destination_id": row.id, "owner_id": owner_id}
    log.info("circuit reset", extra=fields)
    return JSONResponse(_out(svc, row, now))


routes = [
    Route("/v1/destinations", list_destinations, methods=["GET"]),
    Route("/v1/destinations/{id}/reset", reset, methods=["POST"]),
]
