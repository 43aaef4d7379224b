"""Batches (SPEC §17.1): many registrations at once, all or none, with dependencies between
them by ``ref``; a batch read back with its edges."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from ulid import ULID

from tasks_server import lifecycle
from tasks_server.api import idempotency
from tasks_server.api.body import read_json
from tasks_server.api.errors import ApiError, JSONResponse, NotFound, validation_problems
from tasks_server.api.queues import linked_task, once, queue_out, refuse, summary, validate_task
from tasks_server.models.batches import MAX_BATCH, BatchOut, BatchRead, Edge
from tasks_server.models.queues import REF_PATTERN, ULID_PATTERN, QueueRegistration
from tasks_server.services import Services, services
from tasks_server.store.base import InsertOutcome, Link, LinkedTask

MAX_BODY = 16 * 1024 * 1024  # a batch's body, at most
_REF = re.compile(REF_PATTERN)
_ULID = re.compile(ULID_PATTERN)


async def register(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    idempotency_key = idempotency.key(request)
    document = await read_json(request, max(MAX_BODY, svc.settings.max_size_body_request))
    now = svc.clock()
    items = _items(document)
    refs = [ref for ref, _ in items]
    regs = [_validated(svc, index, body, now) for index, (_, body) in enumerate(items)]
    order = _order(refs, regs)
    base = int(ULID())  # consecutive ids: the batch reads back in its order
    ids = [str(ULID.from_int(base + index)) for index in range(len(items))]
    batch_id = str(ULID())
    by_ref = {ref: ids[index] for index, ref in enumerate(refs) if ref is not None}
    tasks = [_linked(svc, owner_id, regs[i], ids[i], refs[i], by_ref, now) for i in order]
    done = await svc.store.insert_linked(
        owner_id,
        tasks,
        plan=lifecycle.linked,
        limit=svc.settings.max_tasks_in_queue,
        batch_id=batch_id,
        idempotency=once(svc, owner_id, idempotency_key, document, now),
    )
    if done.outcome is InsertOutcome.UNKNOWN_DEPENDENCY:
        raise ApiError(400, f"dependsOn: {done.unknown} is not one of your tasks")
    replayed = done.outcome is InsertOutcome.REPLAYED
    if not replayed and done.outcome is not InsertOutcome.INSERTED:
        refuse(svc, done.outcome, idempotency_key)
    rows = sorted(done.rows, key=lambda row: row.id)
    body = BatchOut(
        batch_id=rows[0].batch_id or batch_id, tasks=[queue_out(svc, row) for row in rows]
    ).model_dump(by_alias=True)
    if replayed:
        return JSONResponse(body, 200, {"Idempotent-Replayed": "true"})
    svc.metrics.registrations.inc(len(rows))
    for row in rows:
        svc.scheduler.changed(row.id, row)
    if any(row.state == lifecycle.ERROR for row in rows):
        svc.scheduler.settled()
    return JSONResponse(body, 201)


def _items(document: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """The batch's registrations, each with its ref taken out."""
    tasks = document.get("tasks") if isinstance(document, dict) else None
    if not isinstance(document, dict) or set(document) != {"tasks"} or not isinstance(tasks, list):
        raise ApiError(400, 'The body must be {"tasks": [registrations]}')
    if not 1 <= len(tasks) <= MAX_BATCH:
        raise ApiError(400, f"A batch holds 1 to {MAX_BATCH} tasks; this one has {len(tasks)}")
    items = []
    seen: set[str] = set()
    for index, item in enumerate(tasks):
        if not isinstance(item, dict):
            raise ApiError(400, f"tasks[{index}]: must be a registration object")
        body = dict(item)
        ref = body.pop("ref", None)
        if ref is not None and (not isinstance(ref, str) or not _REF.match(ref)):
            raise ApiError(400, f"tasks[{index}].ref: 1–64 of A-Z a-z 0-9 _ -")
        if ref in seen:
            raise ApiError(400, f"tasks[{index}].ref: {ref!r} is already the ref of another task")
        if ref is not None:
            seen.add(ref)
        items.append((ref, body))
    return items


def _validated(svc: Services, index: int, body: dict[str, Any], now: int) -> QueueRegistration:
    try:
        return validate_task(svc, body, now, check_future=True)
    except ValidationError as exc:
        problems = validation_problems(exc)
        for problem in problems:
            problem["path"] = f"tasks[{index}].{problem['path']}"
        raise ApiError(400, problems) from None
    except ApiError as exc:
        raise ApiError(exc.status_code, f"tasks[{index}]: {exc.message}") from None


def _order(refs: list[str | None], regs: list[QueueRegistration]) -> list[int]:
    """The items' indexes, each after those it depends on; 400 for an unknown ref or a
    cycle."""
    index_of = {ref: index for index, ref in enumerate(refs) if ref is not None}
    parents: list[list[int]] = []
    for index, reg in enumerate(regs):
        mine = []
        for dependency in reg.depends_on or ():
            if dependency.ref is None:
                continue
            if dependency.ref not in index_of:
                raise ApiError(400, f"tasks[{index}].dependsOn: no task has ref {dependency.ref!r}")
            mine.append(index_of[dependency.ref])
        parents.append(mine)
    order: list[int] = []
    state = [0] * len(regs)  # 0 new, 1 on the path, 2 ordered
    for start in range(len(regs)):
        stack = [(start, 0)]
        while stack:
            node, step = stack.pop()
            if step == 0:
                if state[node] == 2:
                    continue
                if state[node] == 1:
                    raise ApiError(400, f"tasks[{node}].dependsOn: the dependencies form a cycle")
                state[node] = 1
            if step < len(parents[node]):
                stack.append((node, step + 1))
                stack.append((parents[node][step], 0))
            else:
                state[node] = 2
                order.append(node)
    return order


def _linked(
    svc: Services,
    owner_id: str,
    reg: QueueRegistration,
    queue_id: str,
    ref: str | None,
    by_ref: dict[str, str],
    now: int,
) -> LinkedTask:
    links = tuple(
        Link(by_ref[d.ref] if d.ref is not None else d.name, d.name, d.require_success)
        for d in reg.depends_on or ()
    )
    return linked_task(svc, owner_id, reg, queue_id, now, links=links, ref=ref)


async def get(request: Request) -> Response:
    svc = services(request)
    owner_id = await svc.auth.owner_id(request)
    batch_id = request.path_params["id"]
    if not _ULID.match(batch_id):
        raise NotFound()
    rows, edges = await svc.store.batch(owner_id, batch_id)
    if not rows:
        raise NotFound()
    read = BatchRead(
        batch_id=batch_id,
        tasks=[summary(row) for row in rows],
        edges=[Edge(parent=p, child=c, require_success=required) for p, c, required in edges],
    )
    return JSONResponse(read.model_dump(by_alias=True))


routes = [
    Route("/v1/queues/batch", register, methods=["POST"]),
    Route("/v1/batches/{id}", get, methods=["GET"]),
]
