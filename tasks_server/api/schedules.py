"""Schedule routes (SPEC §11.1): create, list, read, edit, pause, resume, delete."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server import schedule_lifecycle, tracing
from tasks_server.api.body import merge_patch, read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound
from tasks_server.api.queues import traceparent, validate_task
from tasks_server.cron import Cron
from tasks_server.models.common import Done
from tasks_server.models.labels import read_labels, stored_labels
from tasks_server.models.lists import listing
from tasks_server.models.queues import HttpRequest, redact
from tasks_server.models.schedules import (
    ScheduleConfigOut,
    ScheduleListQuery,
    ScheduleOut,
    ScheduleRegistration,
    ScheduleState,
    task_document,
)
from tasks_server.schedule_lifecycle import (
    EditSchedule,
    PauseSchedule,
    ResumeSchedule,
    ScheduleTransition,
)
from tasks_server.schedules import METADATA, REQUEST
from tasks_server.services import Services, services
from tasks_server.store.base import Rejected, ScheduleRow

log = logging.getLogger(__name__)

ACTIVE, PAUSED = ScheduleState.ACTIVE.value, ScheduleState.PAUSED.value
POLICY_FIELDS = {
    "missed_runs": "missedRuns",
    "catch_up_window": "catchUpWindow",
    "overlap": "overlap",
}


def _validate(svc: Services, document: Any, now: int) -> ScheduleRegistration:
    schedule = ScheduleRegistration.model_validate(document)
    validate_task(svc, task_document(schedule.document()), now, check_future=False)
    return schedule


def _sealed(
    svc: Services, schedule: ScheduleRegistration, schedule_id: str, kept: str | None
) -> tuple[bytes, bytes | None]:
    """The schedule's document (with the trace context it keeps) and metadata, sealed for it
    (labels are plain: a column)."""
    document = schedule.document()
    document.pop("labels", None)
    metadata = document.pop("metadata", None)
    if kept is not None:
        document[tracing.STORED] = kept
    sealed = None if metadata is None else svc.codec.seal_json(metadata, schedule_id, METADATA)
    return svc.codec.seal_json(document, schedule_id, REQUEST), sealed


def _out(svc: Services, row: ScheduleRow) -> dict[str, Any]:
    metadata = None
    if row.metadata is not None:
        metadata = svc.codec.open_json(row.metadata, row.id, METADATA)
    # At most MAX_SCHEDULES per owner: opening each one's request for its list row is cheap.
    document = svc.codec.open_json(row.request, row.id, REQUEST)
    context = {"check_future": False, "stored": True}
    shown = listing(HttpRequest.model_validate(document["httpRequest"], context=context), None)
    out = ScheduleOut(
        id=row.id,
        state=ScheduleState(row.state),
        cron=row.cron,
        timezone=row.timezone,
        created_at=row.created_at,
        next_run_at=row.next_run_at if row.state == ACTIVE else 0,
        last_run_at=row.last_run_at,
        last_queue_id=row.last_queue_id,
        metadata=metadata,
        labels=read_labels(row.labels),
        method=shown.method,
        target=shown.target,
    )
    return out.model_dump(by_alias=True)


def _event(action: str, schedule_id: str, owner_id: str) -> None:
    fields = {"action": f"schedule_{action}", "schedule_id": schedule_id, "owner_id": owner_id}
    log.info("schedule %s", action, extra=fields)


async def create(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    incoming = traceparent(request)
    now = svc.clock()
    document = await read_json(request, svc.settings.max_size_body_request)
    schedule = _validate(svc, document, now)
    schedule_id = str(ULID())
    span = svc.tracing.registration("schedule.register", incoming)
    request_blob, metadata = _sealed(
        svc, schedule, schedule_id, incoming if span is None else span.traceparent
    )
    row = None
    try:
        row = await svc.store.create_schedule(
            schedule_id=schedule_id,
            owner_id=owner_id,
            cron=schedule.cron,
            timezone=schedule.timezone,
            created_at=now,
            next_run_at=Cron(schedule.cron, schedule.timezone).next_after(now),
            request=request_blob,
            metadata=metadata,
            limit=svc.settings.max_schedules,
            labels=stored_labels(schedule.labels),
        )
    finally:
        if span is not None:
            outcome = "REFUSED" if row is None else "CREATED"
            span.end({"tasks.schedule_id": schedule_id, "tasks.outcome": outcome}, error=not row)
    if row is None:
        raise ApiError(
            422, f"Schedule limit reached: at most {svc.settings.max_schedules} per owner"
        )
    svc.schedules.wake()
    _event("created", schedule_id, owner_id)
    return JSONResponse(_out(svc, row), 201)


async def list_schedules(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    query = ScheduleListQuery.model_validate(dict(request.query_params))
    rows = await svc.store.list_schedules(owner_id, limit=query.limit, offset=query.offset)
    return JSONResponse([_out(svc, row) for row in rows])


async def _owned(request: Request) -> tuple[Services, str, str]:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    return svc, owner_id, request.path_params["id"]


async def get(request: Request) -> Response:
    svc, owner_id, schedule_id = await _owned(request)
    row = await svc.store.get_schedule(owner_id, schedule_id)
    if row is None:
        raise NotFound()
    return JSONResponse(_out(svc, row))


def _document(svc: Services, row: ScheduleRow) -> dict[str, Any]:
    document: dict[str, Any] = svc.codec.open_json(row.request, row.id, REQUEST)
    document.update(cron=row.cron, timezone=row.timezone)
    if row.metadata is not None:
        document["metadata"] = svc.codec.open_json(row.metadata, row.id, METADATA)
    if row.labels is not None:
        document["labels"] = read_labels(row.labels)
    return document


async def config(request: Request) -> Response:
    """The stored request and config each fire registers, as a task's ``/config`` shows it."""
    svc, owner_id, schedule_id = await _owned(request)
    row = await svc.store.get_schedule(owner_id, schedule_id)
    if row is None:
        raise NotFound()
    document = redact(_document(svc, row))
    out = ScheduleConfigOut(
        http_request=document["httpRequest"],
        config=document.get("config", {}),
        metadata=document.get("metadata"),
        **{
            name: document[alias]
            for name, alias in POLICY_FIELDS.items()
            if alias in document  # a schedule stored before SPEC §18.3 has the defaults
        },
    )
    return JSONResponse(out.model_dump(by_alias=True))


async def edit(request: Request) -> Response:
    """A JSON merge patch over the stored schedule, validated in full."""
    svc, owner_id, schedule_id = await _owned(request)
    patch = await read_json(request, svc.settings.max_size_body_request)
    if not isinstance(patch, dict):
        raise ApiError(400, "The body must be a JSON merge patch object")
    row = await svc.store.get_schedule(owner_id, schedule_id)
    if row is None:
        raise NotFound()
    now = svc.clock()
    document = _document(svc, row)
    kept = document.pop(tracing.STORED, None)  # the server's: not an owner's to patch
    schedule = _validate(svc, merge_patch(document, patch), now)
    request_blob, metadata = _sealed(svc, schedule, schedule_id, kept)
    transition = EditSchedule(
        now=now,
        seen=row.version,
        cron=schedule.cron,
        timezone=schedule.timezone,
        request=request_blob,
        metadata=metadata,
        labels=stored_labels(schedule.labels),
    )
    return JSONResponse(_out(svc, await _apply(svc, owner_id, schedule_id, "edited", transition)))


async def _apply(
    svc: Services, owner_id: str, schedule_id: str, action: str, transition: ScheduleTransition
) -> ScheduleRow:
    result = await svc.store.change_schedule(
        owner_id, schedule_id, lambda row: schedule_lifecycle.decide(row, transition)
    )
    if result is None:
        raise NotFound()
    if isinstance(result, Rejected):
        raise ApiError(422, result.message)
    svc.schedules.wake()
    _event(action, schedule_id, owner_id)
    return result


async def pause(request: Request) -> Response:
    svc, owner_id, schedule_id = await _owned(request)
    paused = await _apply(svc, owner_id, schedule_id, "paused", PauseSchedule())
    return JSONResponse(_out(svc, paused))


async def resume(request: Request) -> Response:
    svc, owner_id, schedule_id = await _owned(request)
    resumed = await _apply(svc, owner_id, schedule_id, "resumed", ResumeSchedule(svc.clock()))
    return JSONResponse(_out(svc, resumed))


async def delete(request: Request) -> Response:
    """Delete the schedule; the tasks it registered stay."""
    svc, owner_id, schedule_id = await _owned(request)
    if not await svc.store.delete_schedule(owner_id, schedule_id):
        raise NotFound()
    _event("deleted", schedule_id, owner_id)
    return JSONResponse(Done().model_dump())


routes = [
    Route("/v1/schedules", create, methods=["POST"]),
    Route("/v1/schedules", list_schedules, methods=["GET"]),
    Route("/v1/schedules/{id}", get, methods=["GET"]),
    Route("/v1/schedules/{id}", edit, methods=["PATCH"]),
    Route("/v1/schedules/{id}", delete, methods=["DELETE"]),
    Route("/v1/schedules/{id}/config", config, methods=["GET"]),
    Route("/v1/schedules/{id}/pause", pause, methods=["PATCH"]),
    Route("/v1/schedules/{id}/resume", resume, methods=["PATCH"]),
]
