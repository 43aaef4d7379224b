"""Queue (task) routes: register, list, read, edit, config, pause/resume/revoke, execute, delete."""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server import lifecycle, placeholders, tracing
from tasks_server.api import idempotency
from tasks_server.api.body import merge_patch, read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound
from tasks_server.executor.options import unsupported
from tasks_server.lifecycle import Edit, Execute, Pause, Resume, Revoke, Transition
from tasks_server.models.attempts import (
    MAX_BULK,
    AttemptOut,
    AttemptOutcome,
    AttemptsQuery,
    Bulk,
    BulkAction,
    BulkOut,
    Refusal,
    Replay,
)
from tasks_server.models.common import Done
from tasks_server.models.labels import read_labels
from tasks_server.models.lists import FilteredListQuery, listing
from tasks_server.models.queues import (
    DependencyOut,
    QueueConfigOut,
    QueueOut,
    QueueRegistration,
    QueueState,
    QueueSummary,
    execution_time,
    redact,
)
from tasks_server.services import Services, services
from tasks_server.store.base import (
    AttemptRow,
    Idempotency,
    InsertOutcome,
    Link,
    LinkedTask,
    NewTask,
    QueueRow,
    QueueSummaryRow,
    Rejected,
    limit_message,
)

log = logging.getLogger(__name__)

RUNNING, PAUSED = QueueState.RUNNING.value, QueueState.PAUSED.value
SUCCESS, ERROR, REVOKED = (
    QueueState.SUCCESS.value,
    QueueState.ERROR.value,
    QueueState.REVOKED.value,
)
_TIMING_FIELDS = ("executionDelay", "executeAt")


def validate_task(
    svc: Services, document: Any, now: int, *, check_future: bool
) -> QueueRegistration:
    """A task registration as the routes accept it: the model's rules, then what the
    running libcurl and the destination guard refuse (400)."""
    context = {"now": now, "tz": svc.settings.tz, "check_future": check_future}
    reg = QueueRegistration.model_validate(document, context=context)
    problems = unsupported(
        reg, certs_dir=svc.settings.certs_dir, guard=svc.settings.destination_guard
    )
    if problems:
        raise ApiError(400, problems)
    try:
        used = placeholders.names(reg)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if unknown := sorted(used - {dependency.name for dependency in reg.depends_on or ()}):
        raise ApiError(400, f"Placeholders name no task in dependsOn: {', '.join(unknown)}")
    return reg


def linked_task(
    svc: Services, owner_id: str, reg: QueueRegistration, queue_id: str, now: int, **fields: Any
) -> LinkedTask:
    """A registration as `TaskStore.insert_linked` takes it (`fields`: its links and ref)."""
    task = NewTask(
        queue_id=queue_id,
        created_at=now,
        due=reg.config.execute_at or 0,
        retry_limit=reg.config.retry,
        request=svc.codec.seal_request(reg, queue_id),
        metadata=_sealed_metadata(svc, reg, queue_id),
        flow=svc.codec.flow(reg, owner_id),
        listing=listing(reg.http_request, reg.labels),
    )
    return LinkedTask(task, release_delay=reg.config.execution_delay, **fields)


def _sealed_metadata(svc: Services, reg: QueueRegistration, queue_id: str) -> bytes | None:
    return None if reg.metadata is None else svc.codec.seal_json(reg.metadata, queue_id, "metadata")


def once(
    svc: Services, owner_id: str, key: str | None, document: Any, now: int
) -> Idempotency | None:
    """The registration's `Idempotency-Key`, as the store keeps it."""
    if key is None:
        return None
    digest = svc.codec.idempotency_key(owner_id, key)
    return Idempotency(
        digest, idempotency.body_digest(document), now, svc.settings.idempotency_ttl_ms
    )


def refuse(svc: Services, outcome: InsertOutcome, key: str | None) -> None:
    """The answer to a registration that stored nothing (the store's `outcome`)."""
    if outcome is InsertOutcome.KEY_REUSED:
        raise ApiError(422, f"Idempotency-Key {key!r} was already used with another body")
    if outcome is InsertOutcome.LIMIT_REACHED:
        raise ApiError(422, limit_message(svc.settings.max_tasks_in_queue))
    raise ApiError(403)


def traceparent(request: Request) -> str | None:
    """The registration's W3C trace context, as a task keeps it (400 when malformed)."""
    value = request.headers.get(tracing.HEADER)
    if value is None:
        return None
    try:
        return tracing.parse(value)
    except tracing.InvalidTraceparent as exc:
        raise ApiError(400, f"The traceparent header is not a W3C trace context: {exc}") from None


def queue_out(svc: Services, row: QueueRow) -> dict[str, Any]:
    response = None
    if row.response is not None:
        response = base64.b64encode(svc.codec.open(row.response, row.id, "response")).decode()
    metadata = None
    if row.metadata is not None:
        metadata = svc.codec.open_json(row.metadata, row.id, "metadata")
    out = QueueOut(
        **_summary_fields(row),
        response=response,
        metadata=metadata,
        callback_queue_id=row.callback_id,
        callback_of=row.callback_of,
    )
    return out.model_dump(by_alias=True)


def summary(row: QueueRow | QueueSummaryRow) -> QueueSummary:
    return QueueSummary(**_summary_fields(row))


def _summary_fields(row: QueueRow | QueueSummaryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": QueueState(row.state),
        "created_at": row.created_at,
        "status_code": row.status_code,
        "estimate_end_at": row.estimate_end_at,
        "estimate_execution_at": row.estimate_execution_at,
        "schedule_id": row.schedule_id,
        "batch_id": row.batch_id,
        "ref": row.ref,
        "method": row.method,
        "target": row.target,
        "labels": read_labels(row.labels),
    }


async def _owned(request: Request) -> tuple[Services, str, str]:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    return svc, owner_id, request.path_params["id"]


async def register(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    idempotency_key = idempotency.key(request)
    incoming = traceparent(request)
    document = await read_json(request, svc.settings.max_size_body_request)
    now = svc.clock()
    reg = validate_task(svc, document, now, check_future=True)
    queue_id = str(ULID())
    span = svc.tracing.registration("task.register", incoming)
    reg.traced(incoming if span is None else span.traceparent)
    if reg.depends_on:
        return await _register_linked(
            svc, owner_id, reg, queue_id, now, (idempotency_key, document), span
        )
    due = execution_time(reg, now)
    flow = svc.codec.flow(reg, owner_id)
    # A task with flow control is leased only by a claim, under its key's lock.
    lease = None if flow is not None else svc.scheduler.lease_for(due)

    async def insert_and_adopt() -> tuple[InsertOutcome, QueueRow | None]:
        inserted = await svc.store.insert(
            queue_id=queue_id,
            owner_id=owner_id,
            created_at=now,
            due=due,
            retry_limit=reg.config.retry,
            request=svc.codec.seal_request(reg, queue_id),
            metadata=_sealed_metadata(svc, reg, queue_id),
            limit=svc.settings.max_tasks_in_queue,
            lease=lease,
            idempotency=key,
            flow=flow,
            listing=listing(reg.http_request, reg.labels),
        )
        if lease is not None and inserted[0] is InsertOutcome.INSERTED:
            svc.scheduler.adopt(inserted[1], reg)  # type: ignore[arg-type]
        return inserted

    key = once(svc, owner_id, idempotency_key, document, now)
    # Shielded: a handler cancelled after the commit must still hand its lease over.
    outcome = None
    try:
        outcome, row = await asyncio.shield(svc.scheduler.spawn(insert_and_adopt(), "register"))
    finally:
        _registered(span, queue_id, outcome)
    if outcome is InsertOutcome.REPLAYED and row is not None:
        return JSONResponse(queue_out(svc, row), 200, {"Idempotent-Replayed": "true"})
    if outcome is not InsertOutcome.INSERTED or row is None:
        refuse(svc, outcome, idempotency_key)
    assert row is not None
    svc.metrics.registrations.inc()
    _event("registered", queue_id, owner_id)
    return JSONResponse(queue_out(svc, row), 201)


async def _register_linked(
    svc: Services,
    owner_id: str,
    reg: QueueRegistration,
    queue_id: str,
    now: int,
    keyed: tuple[str | None, Any],
    span: tracing.Span | None,
) -> Response:
    """A registration with dependencies on the owner's tasks (SPEC §17.2); `keyed`: its
    `Idempotency-Key` and body."""
    assert reg.depends_on is not None
    if any(dependency.ref is not None for dependency in reg.depends_on):
        raise ApiError(
            400, "A ref names a task of the same batch: register them with POST /v1/queues/batch"
        )
    links = tuple(Link(d.name, d.name, d.require_success) for d in reg.depends_on)
    task = linked_task(svc, owner_id, reg, queue_id, now, links=links)
    key, document = keyed
    outcome = None
    try:
        done = await svc.store.insert_linked(
            owner_id,
            [task],
            plan=lifecycle.linked,
            limit=svc.settings.max_tasks_in_queue,
            batch_id=None,
            idempotency=once(svc, owner_id, key, document, now),
        )
        outcome = done.outcome
    finally:
        _registered(span, queue_id, outcome)
    if done.outcome is InsertOutcome.UNKNOWN_DEPENDENCY:
        raise ApiError(400, f"dependsOn: {done.unknown} is not one of your tasks")
    if done.outcome is InsertOutcome.REPLAYED:
        return JSONResponse(queue_out(svc, done.rows[0]), 200, {"Idempotent-Replayed": "true"})
    if done.outcome is not InsertOutcome.INSERTED:
        refuse(svc, done.outcome, key)
    row = done.rows[0]
    svc.metrics.registrations.inc()
    svc.scheduler.changed(row.id, row)
    if row.state == ERROR:  # a dependency it requires failed already: its failureCallback
        svc.scheduler.settled()
    _event("registered", queue_id, owner_id)
    return JSONResponse(queue_out(svc, row), 201)


def _registered(span: tracing.Span | None, queue_id: str, outcome: InsertOutcome | None) -> None:
    """End a registration's span: its task, and what became of it (None: it failed)."""
    if span is not None:
        name = "FAILED" if outcome is None else outcome.name
        ok = outcome in (InsertOutcome.INSERTED, InsertOutcome.REPLAYED)
        span.end({"tasks.task_id": queue_id, "tasks.outcome": name}, error=not ok)


async def list_queues(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    query = FilteredListQuery.of(request.query_params)
    rows = await svc.store.list_tasks(
        owner_id,
        filters=query.filters(),
        order=query.order,
        descending=query.sort == "desc",
        limit=query.limit,
        offset=query.offset,
    )
    return JSONResponse([summary(row).model_dump(by_alias=True) for row in rows])


async def get(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    row = await svc.store.get(owner_id, queue_id)
    if row is None:
        raise NotFound()
    out = queue_out(svc, row)
    dependencies, dependents = await svc.store.links(queue_id)
    out["dependencies"] = [
        DependencyOut(
            id=link.depends_on, name=link.name, require_success=link.require_success
        ).model_dump(by_alias=True)
        for link in dependencies
    ]
    out["dependents"] = dependents
    return JSONResponse(out)


async def config(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    row = await svc.store.get(owner_id, queue_id)
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
    """The stored registration document, metadata and labels included."""
    document = svc.codec.open_document(row.request, row.id)
    if row.metadata is not None:
        document["metadata"] = svc.codec.open_json(row.metadata, row.id, "metadata")
    if row.labels is not None:
        document["labels"] = read_labels(row.labels)
    return document


async def edit(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    patch = await read_json(request, svc.settings.max_size_body_request)
    if not isinstance(patch, dict):
        raise ApiError(400, "The body must be a JSON merge patch object")
    action = _Action("edited", lambda svc, now, row: _edit(svc, now, row, patch), reads=True)
    row = await _route_transition(svc, owner_id, queue_id, action)
    return JSONResponse(queue_out(svc, row))


def _edit(svc: Services, now: int, row: QueueRow | None, patch: dict[str, Any]) -> Edit:
    assert row is not None
    if (refusal := lifecycle.edit_refusal(row)) is not None:
        raise ApiError(422, refusal.message)  # before judging the patch against the task
    before = _document(svc, row)
    kept = before.pop(tracing.STORED, None)  # the server's: not an owner's to patch
    merged = merge_patch(before, patch)
    if merged.get("dependsOn") != before.get("dependsOn"):
        raise ApiError(400, "dependsOn cannot be changed once registered")
    timing = _timing(merged) != _timing(before)
    reg = validate_task(svc, merged, now, check_future=timing).traced(kept)
    return Edit(
        now=now,
        seen=row.version,
        request=svc.codec.seal_request(reg, row.id),
        metadata=None
        if reg.metadata is None
        else svc.codec.seal_json(reg.metadata, row.id, "metadata"),
        retry_limit=reg.config.retry,
        flow=svc.codec.flow(reg, row.owner_id),
        due=execution_time(reg, now) if timing else None,
        release=(reg.config.execute_at or 0, reg.config.execution_delay),
        listing=listing(reg.http_request, reg.labels),
    )


def _timing(document: dict[str, Any]) -> tuple[Any, ...]:
    config = document.get("config") or {}
    return tuple(config.get(name) for name in _TIMING_FIELDS)


def _event(action: str, queue_id: str, owner_id: str) -> None:
    log.info(
        "task %s", action, extra={"action": action, "queue_id": queue_id, "owner_id": owner_id}
    )


# --- transitions: built outside the transaction, decided inside it (tasks_server.lifecycle) ---


@dataclass(frozen=True, slots=True)
class _Action:
    """A client's request: its name in logs, and how its transition is built (`reads`: from
    the task as read first, for what it holds)."""

    name: str
    build: Callable[[Services, int, QueueRow | None], Transition]
    reads: bool = False


def _resume(svc: Services, now: int, row: QueueRow | None) -> Resume:
    assert row is not None
    config = svc.codec.open_request(row.request, row.id).config
    return Resume(now, row.version, config.execute_at if config.execute_immediately else None)


_ONE_SHOT_TIMES = ("timeoutAt", "retryAt")  # absolute times of the first run only


def _replay(delay: int) -> _Action:
    def build(svc: Services, now: int, row: QueueRow | None) -> lifecycle.Replay:
        assert row is not None
        document = svc.codec.open_document(row.request, row.id)
        config = document.get("config") or {}
        if not any(name in config for name in _ONE_SHOT_TIMES):
            return lifecycle.Replay(now, row.version, delay)
        for name in _ONE_SHOT_TIMES:
            config.pop(name, None)
        document["config"] = config
        request = svc.codec.seal_json(document, row.id, "request")
        return lifecycle.Replay(now, row.version, delay, request, config.get("retry", 0))

    return _Action("replayed", build, reads=True)


PAUSE = _Action("paused", lambda _svc, now, _row: Pause(now))
RESUME = _Action("resumed", _resume, reads=True)
REVOKE = _Action("revoked", lambda _svc, now, _row: Revoke(now))
EXECUTE = _Action("executed", lambda _svc, now, _row: Execute(now))
_STALE_TRIES = 3


async def _transition(
    svc: Services, owner_id: str, queue_id: str, action: _Action
) -> QueueRow | Rejected | None:
    """Apply one transition; tell the scheduler and log when it applied. One built from the
    task as read is built again if the task changed meanwhile."""
    for _ in range(_STALE_TRIES):
        row = await svc.store.get(owner_id, queue_id) if action.reads else None
        if action.reads and row is None:
            return None
        transition = action.build(svc, svc.clock(), row)
        result = await svc.store.change(
            owner_id,
            queue_id,
            functools.partial(lifecycle.decide, transition=transition),
            limit=svc.settings.max_tasks_in_queue,
        )
        if result == lifecycle.STALE:
            continue
        if isinstance(result, QueueRow):
            svc.scheduler.changed(queue_id, result)
            if result.has_dependents:
                svc.scheduler.settled()
            _event(action.name, queue_id, owner_id)
        return result
    return Rejected("The task kept changing meanwhile; try again")


async def _route_transition(
    svc: Services, owner_id: str, queue_id: str, action: _Action
) -> QueueRow:
    result = await _transition(svc, owner_id, queue_id, action)
    if result is None:
        raise NotFound()
    if isinstance(result, Rejected):
        raise ApiError(422, result.message)
    return result


async def _route(request: Request, action: _Action) -> QueueRow:
    svc, owner_id, queue_id = await _owned(request)
    return await _route_transition(svc, owner_id, queue_id, action)


async def pause(request: Request) -> Response:
    await _route(request, PAUSE)
    return JSONResponse(Done().model_dump())


async def resume(request: Request) -> Response:
    row = await _route(request, RESUME)
    return JSONResponse(queue_out(services(request), row))


async def revoke(request: Request) -> Response:
    await _route(request, REVOKE)
    return JSONResponse(Done().model_dump())


async def execute(request: Request) -> Response:
    await _route(request, EXECUTE)
    return JSONResponse(Done().model_dump())


async def replay(request: Request) -> Response:
    svc = services(request)
    await svc.auth.owner_id(request)
    raw = await read_json(request, svc.settings.max_size_body_request, required=False)
    body = Replay.model_validate({} if raw is None else raw)
    row = await _route(request, _replay(body.execution_delay))
    return JSONResponse(queue_out(svc, row))


async def _delete(svc: Services, owner_id: str, queue_id: str) -> bool:
    if not await svc.store.delete(owner_id, queue_id):
        return False
    svc.scheduler.changed(queue_id, None)
    svc.scheduler.settled()  # it may have had dependents
    _event("deleted", queue_id, owner_id)
    return True


async def delete(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    if not await _delete(svc, owner_id, queue_id):
        raise NotFound()
    return JSONResponse(Done().model_dump())


_BULK = {
    BulkAction.PAUSE: PAUSE,
    BulkAction.RESUME: RESUME,
    BulkAction.REVOKE: REVOKE,
    BulkAction.REPLAY: _replay(0),
}


async def bulk(request: Request) -> Response:
    """One action over many tasks, each by the rules of its single route."""
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    body = Bulk.model_validate(await read_json(request, svc.settings.max_size_body_request))
    total = 0
    if body.state is not None:
        ids, total = await svc.store.ids_in_state(owner_id, body.state.value, MAX_BULK)
    else:
        ids = list(dict.fromkeys(body.ids or ()))

    async def one(queue_id: str) -> QueueRow | Rejected | bool | None:
        if body.action is BulkAction.DELETE:
            return await _delete(svc, owner_id, queue_id) or None
        return await _transition(svc, owner_id, queue_id, _BULK[body.action])

    # Concurrent, so the writes share group commits.
    results = await asyncio.gather(*(one(queue_id) for queue_id in ids))
    out = BulkOut(done=[], refused=[], not_found=[], remaining=0)
    for queue_id, result in zip(ids, results, strict=True):
        if result is None:
            out.not_found.append(queue_id)
        elif isinstance(result, Rejected):
            out.refused.append(Refusal(id=queue_id, message=result.message))
        else:
            out.done.append(queue_id)
    if body.state is not None:
        out.remaining = total - len(out.done)
    return JSONResponse(out.model_dump(by_alias=True))


async def attempts(request: Request) -> Response:
    svc, owner_id, queue_id = await _owned(request)
    query = AttemptsQuery.model_validate(dict(request.query_params))
    row = await svc.store.get(owner_id, queue_id)
    if row is None:
        raise NotFound()
    rows = await svc.store.attempts(queue_id, limit=query.limit, offset=query.offset)
    return JSONResponse([_attempt_out(svc, queue_id, a).model_dump(by_alias=True) for a in rows])


def _attempt_out(svc: Services, queue_id: str, row: AttemptRow) -> AttemptOut:
    error = None
    if row.error is not None:
        column = f"attempt-{row.attempt}-error"
        error = svc.codec.open(row.error, queue_id, column).decode(errors="replace")
    response = None
    if row.response is not None:
        response = base64.b64encode(svc.codec.open(row.response, queue_id, "response")).decode()
    sent = None
    if row.sent is not None:
        filled = svc.codec.open_json(row.sent, queue_id, f"attempt-{row.attempt}-sent")
        sent = redact({"httpRequest": filled})["httpRequest"]
    finished = row.finished_at
    return AttemptOut(
        attempt=row.attempt,
        due_at=row.due_at,
        started_at=row.started_at,
        finished_at=finished,
        lateness_ms=max(0, row.started_at - row.due_at),
        duration_ms=max(0, finished - row.started_at) if finished else 0,
        status_code=row.status_code,
        outcome=AttemptOutcome(row.outcome),
        error=error,
        response=response,
        sent=sent,
    )


routes = [
    Route("/v1/queues/register", register, methods=["POST"]),
    Route("/v1/queues/bulk", bulk, methods=["POST"]),
    Route("/v1/queues", list_queues, methods=["GET"]),
    Route("/v1/queues/{id}", get, methods=["GET"]),
    Route("/v1/queues/{id}", edit, methods=["PATCH"]),
    Route("/v1/queues/{id}", delete, methods=["DELETE"]),
    Route("/v1/queues/{id}/config", config, methods=["GET"]),
    Route("/v1/queues/{id}/attempts", attempts, methods=["GET"]),
    Route("/v1/queues/{id}/pause", pause, methods=["PATCH"]),
    Route("/v1/queues/{id}/resume", resume, methods=["PATCH"]),
    Route("/v1/queues/{id}/revoke", revoke, methods=["PATCH"]),
    Route("/v1/queues/{id}/execute", execute, methods=["POST"]),
    Route("/v1/queues/{id}/replay", replay, methods=["POST"]),
]
