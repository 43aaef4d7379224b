"""Queue (task) routes: register, list, read, edit, config, pause/resume/revoke, execute, delete."""

from __future__ import annotations

import base64
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server.api import idempotency
from tasks_server.api.body import read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound
from tasks_server.executor.options import unsupported
from tasks_server.models.common import Done
from tasks_server.models.queues import (
    ListQuery,
    QueueConfigOut,
    QueueOut,
    QueueRegistration,
    QueueState,
    QueueSummary,
    execution_time,
    redact,
)
from tasks_server.services import Services, services
from tasks_server.store import idempotency as idempotency_store
from tasks_server.store import queues
from tasks_server.store.queues import InsertOutcome, QueueRow, QueueSummaryRow, Rejected
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

RUNNING, PAUSED = QueueState.RUNNING.value, QueueState.PAUSED.value
_TIMING_FIELDS = ("executionDelay", "executeAt")
_EDIT_ATTEMPTS = 3


def _validate(svc: Services, document: Any, now: int, *, check_future: bool) -> QueueRegistration:
    context = {"now": now, "tz": svc.settings.tz, "check_future": check_future}
    reg = QueueRegistration.model_validate(document, context=context)
    problems = unsupported(reg, certs_dir=svc.settings.certs_dir)
    if problems:
        raise ApiError(400, problems)
    return reg


def _queue_out(svc: Services, row: QueueRow) -> dict[str, Any]:
    response = None
    if row.response is not None:
        response = base64.b64encode(svc.codec.open(row.response, row.id, "response")).decode()
    metadata = None
    if row.metadata is not None:
        metadata = svc.codec.open_json(row.metadata, row.id, "metadata")
    out = QueueOut(**_summary_fields(row), response=response, metadata=metadata)
    return out.model_dump(by_alias=True)


def _summary(row: QueueRow | QueueSummaryRow) -> QueueSummary:
    return QueueSummary(**_summary_fields(row))


def _summary_fields(row: QueueRow | QueueSummaryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": QueueState(row.state),
        "created_at": row.created_at,
        "status_code": row.status_code,
        "estimate_end_at": row.estimate_end_at,
        "estimate_execution_at": row.estimate_execution_at,
    }


async def _owned(request: Request) -> tuple[Services, str, str]:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    return svc, owner_id, request.path_params["id"]


async def register(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    idempotency_key = idempotency.key(request)
    document = await read_json(request, svc.settings.max_size_body_request)
    now = now_ms()
    reg = _validate(svc, document, now, check_future=True)
    queue_id = str(ULID())
    due = execution_time(reg, now)
    lease = svc.scheduler.lease_for(due)
    insert = queues.insert_unit(
        queue_id=queue_id,
        owner_id=owner_id,
        created_at=now,
        due=due,
        retry_limit=reg.config.retry,
        request=svc.codec.seal_request(reg, queue_id),
        metadata=None
        if reg.metadata is None
        else svc.codec.seal_json(reg.metadata, queue_id, "metadata"),
        limit=svc.settings.max_tasks_in_queue,
        lease=lease,
    )
    if idempotency_key is None:
        result = await svc.db.write(insert)
    else:
        result = await idempotency_store.insert_once(
            svc.db,
            insert,
            owner_id=owner_id,
            key=idempotency_key,
            body_digest=idempotency.body_digest(document),
            now=now,
            ttl_ms=svc.settings.idempotency_ttl_ms,
        )
    if isinstance(result, idempotency_store.KeyReused):
        raise ApiError(
            422, f"Idempotency-Key {idempotency_key!r} was already used with another body"
        )
    if isinstance(result, idempotency_store.Replayed):
        return JSONResponse(_queue_out(svc, result.row), 200, {"Idempotent-Replayed": "true"})
    outcome, row = result
    if outcome is InsertOutcome.LIMIT_REACHED:
        raise ApiError(
            422,
            f"Queue limit reached: at most {svc.settings.max_tasks_in_queue} tasks "
            "RUNNING or PAUSED per owner",
        )
    if outcome is InsertOutcome.NO_OWNER or row is None:
        raise ApiError(403)
    svc.metrics.registrations.inc()
    _event("registered", queue_id, owner_id)
    if lease is not None:
        svc.scheduler.adopt(row, reg)
    return JSONResponse(_queue_out(svc, row), 201)


async def list_queues(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    query = ListQuery.model_validate(dict(request.query_params))
    rows = await queues.list_for_owner(
        svc.db,
        owner_id,
        state=query.state.value if query.state else None,
        order=query.order,
        descending=query.sort == "desc",
        limit=query.limit,
        offset=query.offset,
    )
    return JSONResponse([_summary(row).model_dump(by_alias=True) for row in rows])


async def get(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    row = await queues.get(svc.db, owner_id, queue_id)
    if row is None:
        raise NotFound()
    return JSONResponse(_queue_out(svc, row))


async def config(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    row = await queues.get(svc.db, owner_id, queue_id)
    if row is None:
        raise NotFound()
    document = redact(_document(svc, row))
    retrying = row.state == RUNNING and row.retry_count > 0
    out = QueueConfigOut(
        http_request=document["httpRequest"],
        config=document.get("config", {}),
        metadata=document.get("metadata"),
        retry_count=row.retry_count,
        retry_limit=row.retry_limit,
        retrying=retrying,
        estimate_next_retry_at=row.estimate_execution_at if retrying else 0,
    )
    return JSONResponse(out.model_dump(by_alias=True))


def _document(svc: Services, row: QueueRow) -> dict[str, Any]:
    """The stored registration document, metadata included."""
    document = svc.codec.open_document(row.request, row.id)
    if row.metadata is not None:
        document["metadata"] = svc.codec.open_json(row.metadata, row.id, "metadata")
    return document


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


async def edit(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    patch = await read_json(request, svc.settings.max_size_body_request)
    if not isinstance(patch, dict):
        raise ApiError(400, "The body must be a JSON merge patch object")
    for _ in range(_EDIT_ATTEMPTS):
        row = await queues.get(svc.db, owner_id, queue_id)
        if row is None:
            raise NotFound()
        _editable(svc, row)
        before = _document(svc, row)
        merged = _merge_patch(before, patch)
        now = now_ms()
        timing = _timing(merged) != _timing(before)
        reg = _validate(svc, merged, now, check_future=timing)
        changes: dict[str, Any] = {
            "request": svc.codec.seal_request(reg, queue_id),
            "metadata": None
            if reg.metadata is None
            else svc.codec.seal_json(reg.metadata, queue_id, "metadata"),
            "retry_limit": reg.config.retry,
        }
        if timing:
            changes["estimate_execution_at"] = execution_time(reg, now)
            if row.state == PAUSED:
                changes["paused_at"] = now
        seen = row.version

        def decide(current: QueueRow, seen: int = seen, changes: dict[str, Any] = changes) -> Any:
            return changes if current.version == seen else Rejected("stale")

        result = await queues.change(svc.db, owner_id, queue_id, decide)
        if result is None:
            raise NotFound()
        if isinstance(result, QueueRow):
            svc.scheduler.changed(queue_id, result)
            _event("edited", queue_id, owner_id)
            return JSONResponse(_queue_out(svc, result))
    raise ApiError(422, "The task kept changing while being edited; try again")


def _timing(document: dict[str, Any]) -> tuple[Any, ...]:
    config = document.get("config") or {}
    return tuple(config.get(name) for name in _TIMING_FIELDS)


def _editable(svc: Services, row: QueueRow) -> None:
    if row.state not in (RUNNING, PAUSED):
        raise ApiError(422, f"A {row.state} task can no longer be changed")
    if svc.scheduler.is_in_flight(row.id):
        raise ApiError(422, "The task is being executed right now; try again when it returns")


def _event(action: str, queue_id: str, owner_id: str) -> None:
    log.info(
        "task %s", action, extra={"action": action, "queue_id": queue_id, "owner_id": owner_id}
    )


async def _transition(request: Request, action: str, decide: Any) -> tuple[Services, QueueRow]:
    svc, owner_id, queue_id = await _owned(request)
    result = await queues.change(svc.db, owner_id, queue_id, decide)
    if result is None:
        raise NotFound()
    if isinstance(result, Rejected):
        raise ApiError(422, result.message)
    svc.scheduler.changed(queue_id, result)
    _event(action, queue_id, owner_id)
    return svc, result


def _unless(row: QueueRow, verb: str, *states: str) -> Rejected | None:
    """Refusal (422) unless the task is in one of `states`."""
    if row.state in states:
        return None
    return Rejected(f"Only a {' or '.join(states)} task can be {verb}; this one is {row.state}")


async def pause(request: Request) -> Response:
    now = now_ms()

    def decide(row: QueueRow) -> dict[str, Any] | Rejected:
        if rejected := _unless(row, "paused", RUNNING):
            return rejected
        return {"state": PAUSED, "paused_at": now, "estimate_end_at": now}

    await _transition(request, "paused", decide)
    return JSONResponse(Done().model_dump())


async def resume(request: Request) -> Response:
    svc = services(request)
    now = now_ms()

    def decide(row: QueueRow) -> dict[str, Any] | Rejected:
        if rejected := _unless(row, "resumed", PAUSED):
            return rejected
        due = now + max(0, row.estimate_execution_at - (row.paused_at or now))
        config = svc.codec.open_request(row.request, row.id).config
        if (
            row.retry_count == 0
            and config.execute_immediately
            and config.execute_at is not None
            and config.execute_at <= now
        ):
            due = now
        return {
            "state": RUNNING,
            "paused_at": None,
            "estimate_end_at": 0,
            "estimate_execution_at": due,
        }

    _, row = await _transition(request, "resumed", decide)
    return JSONResponse(_queue_out(svc, row))


async def revoke(request: Request) -> Response:
    now = now_ms()

    def decide(row: QueueRow) -> dict[str, Any] | Rejected:
        if rejected := _unless(row, "revoked", RUNNING, PAUSED):
            return rejected
        return {"state": QueueState.REVOKED.value, "estimate_end_at": now, "paused_at": None}

    await _transition(request, "revoked", decide)
    return JSONResponse(Done().model_dump())


async def execute(request: Request) -> Response:
    svc = services(request)
    now = now_ms()

    def decide(row: QueueRow) -> dict[str, Any] | Rejected:
        if rejected := _unless(row, "executed", RUNNING):
            return rejected
        if svc.scheduler.is_in_flight(row.id):
            return Rejected("The task is being executed right now")
        return {"estimate_execution_at": now}

    await _transition(request, "executed", decide)
    return JSONResponse(Done().model_dump())


async def delete(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    if not await queues.delete(svc.db, owner_id, queue_id):
        raise NotFound()
    svc.scheduler.changed(queue_id, None)
    _event("deleted", queue_id, owner_id)
    return JSONResponse(Done().model_dump())


routes = [
    Route("/v1/queues/register", register, methods=["POST"]),
    Route("/v1/queues", list_queues, methods=["GET"]),
    Route("/v1/queues/{id}", get, methods=["GET"]),
    Route("/v1/queues/{id}", edit, methods=["PATCH"]),
    Route("/v1/queues/{id}", delete, methods=["DELETE"]),
    Route("/v1/queues/{id}/config", config, methods=["GET"]),
    Route("/v1/queues/{id}/pause", pause, methods=["PATCH"]),
    Route("/v1/queues/{id}/resume", resume, methods=["PATCH"]),
    Route("/v1/queues/{id}/revoke", revoke, methods=["PATCH"]),
    Route("/v1/queues/{id}/execute", execute, methods=["POST"]),
]
