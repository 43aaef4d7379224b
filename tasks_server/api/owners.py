"""Owner routes: register, read, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server.api.auth import digest, new_key
from tasks_server.api.body import read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound
from tasks_server.models.common import Done
from tasks_server.models.owners import OwnerOut, OwnerRegister, OwnerRegistered
from tasks_server.services import services
from tasks_server.store.base import DeleteOutcome
from tasks_server.timeutil import now_ms


async def register(request: Request) -> Response:
    svc = services(request)
    body = OwnerRegister.model_validate(
        await read_json(request, svc.settings.max_size_body_request)
    )
    owner_id, key = str(ULID()), new_key()
    created = await svc.store.create_owner(
        owner_id=owner_id, name=body.name, key_digest=digest(key), created_at=now_ms()
    )
    if not created:
        raise ApiError(409, f"Owner name {body.name!r} is already taken")
    return JSONResponse(OwnerRegistered(id=owner_id, key=key).model_dump(), 201)


async def get(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    record = await svc.store.get_owner(owner_id, request.path_params["name"])
    if record is None:
        raise NotFound()
    out = OwnerOut(
        id=record.id,
        name=record.name,
        created_at=record.created_at,
        tasks_in_queue=record.tasks_in_queue,
        tasks_in_queue_limit=svc.settings.max_tasks_in_queue,
    )
    return JSONResponse(out.model_dump(by_alias=True))


async def delete(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    outcome = await svc.store.delete_owner(owner_id, request.path_params["name"])
    if outcome is DeleteOutcome.NOT_FOUND:
        raise NotFound()
    if outcome is DeleteOutcome.HAS_TASKS:
        raise ApiError(422, "Owner still has queued tasks: revoke or delete them first")
    svc.auth.forget(owner_id)
    return JSONResponse(Done().model_dump())


routes = [
    Route("/v1/owners/register", register, methods=["POST"]),
    Route("/v1/owners/{name}", get, methods=["GET"]),
    Route("/v1/owners/{name}", delete, methods=["DELETE"]),
]
