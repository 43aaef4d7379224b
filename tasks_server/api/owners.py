"""Owner routes: register, read, delete, and rotation of the key and the signing secret.

The original's later releases (1.0.0-beta.4) call owners "tasks": `/v1/tasks/register` and
`/v1/tasks/{name}` are the same routes under those names (SPEC §19.1).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server.api.auth import bearer_matches, digest, new_key
from tasks_server.api.body import read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound
from tasks_server.models.common import Done
from tasks_server.models.owners import (
    OwnerKey,
    OwnerOut,
    OwnerRegister,
    OwnerRegistered,
    OwnerSigningSecret,
)
from tasks_server.services import Services, services
from tasks_server.store.base import DeleteOutcome

log = logging.getLogger(__name__)


async def register(request: Request) -> Response:
    svc = services(request)
    admin_key = svc.settings.admin_key
    if admin_key is not None and not bearer_matches(request, admin_key):
        raise ApiError(403)
    body = OwnerRegister.model_validate(
        await read_json(request, svc.settings.max_size_body_request)
    )
    owner_id, key = str(ULID()), new_key()
    signing_secret, sealed = svc.signing_keys.new(owner_id)
    created = await svc.store.create_owner(
        owner_id=owner_id,
        name=body.name,
        key_digest=digest(key),
        created_at=svc.clock(),
        signing_secret=sealed,
    )
    if not created:
        raise ApiError(409, f"Owner name {body.name!r} is already taken")
    out = OwnerRegistered(id=owner_id, key=key, signing_secret=signing_secret)
    return JSONResponse(out.model_dump(by_alias=True), 201)


async def _owner(request: Request) -> tuple[Services, str, str]:
    """The services, the authenticated owner id and the path's name (400 when malformed)."""
    svc = services(request)
    name = OwnerRegister.model_validate({"name": request.path_params["name"]}).name
    return svc, await svc.auth.owner_id(request), name


async def get(request: Request) -> Response:
    svc, owner_id, name = await _owner(request)
    record = await svc.store.get_owner(owner_id, name)
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
    svc, owner_id, name = await _owner(request)
    outcome = await svc.store.delete_owner(owner_id, name)
    if outcome is DeleteOutcome.NOT_FOUND:
        raise NotFound()
    if outcome is DeleteOutcome.HAS_TASKS:
        raise ApiError(422, "Owner still has queued tasks: revoke or delete them first")
    svc.auth.forget(owner_id)
    svc.signing_keys.forget(owner_id)
    return JSONResponse(Done().model_dump())


async def rotate_key(request: Request) -> Response:
    svc, owner_id, name = await _owner(request)
    key = await svc.auth.rotate(owner_id, name, svc.settings.key_rotation_grace_ms)
    if key is None:
        raise NotFound()
    log.info("owner key rotated", extra={"action": "key_rotated", "owner_id": owner_id})
    return JSONResponse(OwnerKey(key=key).model_dump())


async def rotate_signing_secret(request: Request) -> Response:
    svc, owner_id, name = await _owner(request)
    secret = await svc.signing_keys.rotate(owner_id, name, svc.settings.key_rotation_grace_ms)
    if secret is None:
        raise NotFound()
    log.info(
        "owner signing secret rotated",
        extra={"action": "signing_secret_rotated", "owner_id": owner_id},
    )
    return JSONResponse(OwnerSigningSecret(signing_secret=secret).model_dump(by_alias=True))


routes = [
    Route("/v1/owners/register", register, methods=["POST"]),
    Route("/v1/owners/{name}", get, methods=["GET"]),
    Route("/v1/owners/{name}", delete, methods=["DELETE"]),
    Route("/v1/owners/{name}/key", rotate_key, methods=["POST"]),
    Route("/v1/owners/{name}/signing-secret", rotate_signing_secret, methods=["POST"]),
    Route("/v1/tasks/register", register, methods=["POST"]),
    Route("/v1/tasks/{name}", get, methods=["GET"]),
    Route("/v1/tasks/{name}", delete, methods=["DELETE"]),
]
