"""The OpenAPI 3.1 document, generated from the pydantic models the routes validate with.

Schemas come from ``models_json_schema`` over the request models (validation mode) and the
response models (serialisation mode), so the document cannot drift from the code. The document
is static: it is built once and cached.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from tasks_server import __version__
from tasks_server.api.errors import ACTIONS
from tasks_server.models.attempts import AttemptOut, AttemptsQuery, Bulk, BulkOut, Replay
from tasks_server.models.batches import BatchOut, BatchRead, BatchRegistration
from tasks_server.models.common import Done, ErrorBody
from tasks_server.models.destinations import (
    DESTINATION_ID_PATTERN,
    DestinationListQuery,
    DestinationOut,
)
from tasks_server.models.lists import FilteredListQuery
from tasks_server.models.owners import (
    OwnerKey,
    OwnerOut,
    OwnerRegister,
    OwnerRegistered,
    OwnerSigningSecret,
)
from tasks_server.models.queues import (
    QueueConfigOut,
    QueueOut,
    QueueRegistration,
    QueueSummary,
)
from tasks_server.models.schedules import (
    ScheduleConfigOut,
    ScheduleListQuery,
    ScheduleOut,
    ScheduleRegistration,
)
from tasks_server.models.stats import StatsOut, StatsQuery

REF_TEMPLATE = "#/components/schemas/{model}"
ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
# Tasks imported from the original keep its ids: hex milliseconds then decimal ones.
ORIGINAL_ID_PATTERN = r"^([0-9A-HJKMNP-TV-Z]{26}|[0-9A-F]{11}[0-9]{13})$"
# The owner name rule without its look-arounds (the body schema keeps the full pattern).
OWNER_NAME_PATH_PATTERN = r"^[a-z0-9-]{5,32}$"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (QueueRegistration, "validation"),
    (FilteredListQuery, "validation"),
    (StatsQuery, "validation"),
    (StatsOut, "serialization"),
    (AttemptsQuery, "validation"),
    (ScheduleRegistration, "validation"),
    (ScheduleListQuery, "validation"),
    (ScheduleOut, "serialization"),
    (ScheduleConfigOut, "serialization"),
    (Replay, "validation"),
    (Bulk, "validation"),
    (AttemptOut, "serialization"),
    (BulkOut, "serialization"),
    (OwnerRegister, "validation"),
    (QueueOut, "serialization"),
    (QueueSummary, "serialization"),
    (QueueConfigOut, "serialization"),
    (OwnerRegistered, "serialization"),
    (OwnerOut, "serialization"),
    (OwnerKey, "serialization"),
    (OwnerSigningSecret, "serialization"),
    (ErrorBody, "serialization"),
    (Done, "serialization"),
    (DestinationListQuery, "validation"),
    (DestinationOut, "serialization"),
    (BatchRegistration, "validation"),
    (BatchOut, "serialization"),
    (BatchRead, "serialization"),
]

BATCH_EXAMPLES = {
    "chain": {
        "summary": "Three steps: create an order, charge it with the order's id, then notify",
        "value": {
            "tasks": [
                {
                    "ref": "order",
                    "httpRequest": {
                        "url": "https://shop.example.com/orders",
                        "method": "POST",
                        "data": {"sku": "A-1"},
                    },
                },
                {
                    "ref": "charge",
                    "dependsOn": [{"ref": "order"}],
                    "httpRequest": {
                        "url": "https://pay.example.com/charges",
                        "method": "POST",
                        "data": {"orderId": "{{deps.order.json.id}}"},
                    },
                    "config": {"retry": 3},
                },
                {
                    "ref": "notify",
                    "dependsOn": [{"ref": "charge", "requireSuccess": False}],
                    "httpRequest": {
                        "url": "https://hooks.example.com/done",
                        "method": "POST",
                        "data": "the charge answered {{deps.charge.statusCode}}",
                    },
                },
            ]
        },
    }
}

_REASONS = {
    400: "Validation failed; `message` lists each problem with its field path",
    401: "Wrong key",
    403: "Missing or malformed auth headers, unknown owner, or (owner registration) a missing "
    "or wrong ADMIN_KEY",
    404: "Unknown resource (or one the owner does not own): an empty object",
    409: "Owner name taken",
    413: "Request body over MAX_SIZE_BODY_REQUEST",
    422: "The state of the resource forbids the operation",
    429: "Throttled",
    500: "Unexpected error",
    503: "The database is unavailable right now (Retry-After says when to try again)",
}
_AUTH = (401, 403, 429, 500, 503)
# What a registered task's id leads to (OpenAPI links; stateful fuzzing follows them).
_TASK_LINKS = {
    operation: {"operationId": operation, "parameters": {"id": "$response.body#/id"}}
    for operation in (
        "getQueue",
        "getQueueConfig",
        "listAttempts",
        "replayQueue",
        "editQueue",
        "pauseQueue",
        "resumeQueue",
        "revokeQueue",
        "executeQueue",
        "deleteQueue",
    )
}
# The owner id in X-Tasks-Owner-Id, or in the original's later name for it, X-Task-Id.
_SECURITY: list[dict[str, list[str]]] = [
    {"bearer": [], "ownerId": []},
    {"bearer": [], "taskId": []},
]
# The original's later names (1.0.0-beta.4) of the owner routes, served as aliases.
_ALIASES = {"/v1/tasks/register": "/v1/owners/register", "/v1/tasks/{name}": "/v1/owners/{name}"}
# Request examples (tests validate each against its model). The targets are on localhost, so a
# tool that sends the examples reaches no other host.
OWNER_EXAMPLES = {
    "owner": {"summary": "An owner for a billing service", "value": {"name": "acme-billing"}}
}
QUEUE_EXAMPLES = {
    "webhook": {
        "summary": "A JSON webhook in five minutes, retried three times a minute apart",
        "value": {
            "httpRequest": {
                "url": "http://localhost:8080/hooks/invoice-paid",
                "method": "POST",
                "headers": {"Authorization": "Bearer target-token"},
                "data": {"invoice": "INV-1042", "amount": 1999, "currency": "EUR"},
            },
            "config": {"executionDelay": 300_000, "retry": 3, "retryInterval": 60_000},
            "metadata": {"invoice": "INV-1042"},
        },
    },
    "at": {
        "summary": "At an exact time, with exponential backoff and a 10 s timeout",
        "value": {
            "httpRequest": {"url": "http://localhost:8080/reports/daily", "method": "GET"},
            "config": {
                "executeAt": "2036-01-01T09:00:00Z",
                "retry": 5,
                "retryInterval": 30_000,
                "retryBackoff": "exponential",
                "retryMaxInterval": 600_000,
                "timeout": 10_000,
            },
        },
    },
    "callbacks": {
        "summary": "An order sync whose outcome is POSTed back, on success and on failure",
        "value": {
            "httpRequest": {
                "url": "http://localhost:8080/orders/sync",
                "method": "POST",
                "data": {"order": "ORD-77"},
            },
            "config": {
                "retry": 2,
                "retryInterval": 10_000,
                "callback": {
                    "url": "http://localhost:8080/hooks/synced",
                    "headers": {"Authorization": "Bearer callback-token"},
                },
                "failureCallback": {"url": "http://localhost:8080/hooks/sync-failed"},
            },
            "metadata": {"order": "ORD-77"},
        },
    },
    "form": {
        "summary": "A form post with Basic authentication, soon",
        "value": {
            "httpRequest": {
                "url": "http://localhost:8080/forms/signup",
                "method": "POST",
                "data": [{"name": "email", "value": "ada@example.org"}],
                "authBasic": {"username": "forms", "password": "s3cret"},
            },
            "config": {"executionDelay": 1000},
        },
    },
    "flow": {
        "summary": "Through a shared limit: 2 at once and 5 a second for this owner's key",
        "value": {
            "httpRequest": {"url": "http://localhost:8080/api/sync", "method": "POST"},
            "config": {"flowControl": {"key": "api", "parallelism": 2, "ratePerSecond": 5}},
        },
    },
}


# A registration's W3C trace context: kept with the task, a child sent with every attempt.
_TRACEPARENT = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "description": "W3C trace context: every attempt (and callback) sends a child of it "
    "(a malformed value: 400)",
    "schema": {"type": "string", "pattern": r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in sorted(codes):
        if code == 404:
            out["404"] = _json({"type": "object", "maxProperties": 0}, _REASONS[404])
        else:
            schema = {"$ref": REF_TEMPLATE.format(model="ErrorBody")}
            out[str(code)] = _json(schema, f"{_REASONS[code]}. action: {ACTIONS[code]!r}")
    return out


def _path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query_params(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One query parameter per field; an optional ``X | None`` field is just ``X`` (absent)."""
    required = set(model_schema.get("required", []))
    params = []
    for name, field in model_schema["properties"].items():
        schema = dict(field)
        description = schema.pop("description")
        options = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
        if "anyOf" in schema and len(options) == 1:
            del schema["anyOf"]
            schema.update(options[0])
            if schema.get("default", ...) is None:
                del schema["default"]
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": schema,
            }
        )
    return params


def _body(
    ref_or_schema: dict[str, Any],
    description: str,
    examples: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": ref_or_schema}
    if examples:
        media["examples"] = examples
    return {"required": True, "description": description, "content": {"application/json": media}}


def _op(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    secured: bool = True,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": _SECURITY if secured else [],
        "responses": responses,
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


def _build() -> dict[str, Any]:
    names, defs = models_json_schema(_MODELS, by_alias=True, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = defs.get("$defs", {})

    def of(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return names[(model, mode)]

    def query(model: type[BaseModel]) -> list[dict[str, Any]]:
        """The query parameters a route validates with `model`."""
        return _query_params(schemas[of(model, "validation")["$ref"].rsplit("/", 1)[-1]])

    list_params = query(FilteredListQuery)
    attempts_params = query(AttemptsQuery)

    name_param = _path_param("name", OWNER_NAME_PATH_PATTERN, "The owner name")
    id_param = _path_param(
        "id",
        ORIGINAL_ID_PATTERN,
        "The task id: a ULID, or the 24 characters of a task imported from the original",
    )
    queue_out = _json(of(QueueOut), "The task")
    asset_param = _path_param("name", r"^[A-Za-z0-9._-]+$", "The file name")
    asset_responses = {
        "200": {
            "description": "The file",
            "content": {
                media_type: {"schema": {"type": "string"}}
                for media_type in ("text/javascript", "text/css")
            },
        },
        "404": {"description": "No such file (or, for /swagger, SWAGGER_UI is off)"},
    }
    done = _json(of(Done), "Done")

    paths: dict[str, Any] = {
        "/status": {
            "get": _op("status", "Liveness", "service", {"200": _text("OK")}, secured=False)
        },
        "/health": {
            "get": _op(
                "health",
                "Database health",
                "service",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"const": "ok", "description": "The server is up"},
                                "database": {
                                    "type": "string",
                                    "description": '"ok": the database answered',
                                },
                            },
                            "required": ["status"],
                        },
                        "The database answers",
                    ),
                    "503": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"const": "error", "description": "Not healthy"},
                                "database": {
                                    "type": "string",
                                    "description": '"unavailable": no answer in time',
                                },
                            },
                            "required": ["status"],
                        },
                        "The database does not answer",
                    ),
                },
                secured=False,
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics",
                "service",
                {"200": _text("Prometheus text exposition format")},
                secured=False,
            )
        },
        "/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                "service",
                {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")},
                secured=False,
            )
        },
        "/swagger": {
            "get": _op(
                "swagger",
                "A Swagger UI page for this document (when SWAGGER_UI=1)",
                "service",
                {
                    "200": _text("The docs page", "text/html"),
                    "404": {"description": "SWAGGER_UI is off"},
                },
                secured=False,
            )
        },
        "/swagger/{name}": {
            "parameters": [asset_param],
            "get": _op(
                "swaggerAsset",
                "A script or stylesheet of the Swagger UI page (packaged, when SWAGGER_UI=1)",
                "service",
                asset_responses,
                secured=False,
            ),
        },
        "/ui": {
            "get": _op(
                "dashboard",
                "The dashboard page (it signs in with an owner id and key)",
                "service",
                {"200": _text("The dashboard page", "text/html")},
                secured=False,
            )
        },
        "/ui/{name}": {
            "parameters": [asset_param],
            "get": _op(
                "dashboardAsset",
                "A script or stylesheet of the dashboard (packaged)",
                "service",
                asset_responses,
                secured=False,
            ),
        },
        "/v1/owners/register": {
            "post": _op(
                "registerOwner",
                "Register an owner; the key is shown once",
                "owners",
                {
                    "201": _json(of(OwnerRegistered), "The owner id, key and signing secret"),
                    **_errors(400, 403, 409, 413, 429, 500, 503),
                },
                secured=False,
                body=_body(of(OwnerRegister, "validation"), "The owner name", OWNER_EXAMPLES),
            )
        },
        "/v1/owners/{name}": {
            "parameters": [name_param],
            "get": _op(
                "getOwner",
                "Read the authenticated owner",
                "owners",
                {"200": _json(of(OwnerOut), "The owner"), **_errors(400, 404, *_AUTH)},
            ),
            "delete": _op(
                "deleteOwner",
                "Delete the authenticated owner (no task left RUNNING or PAUSED)",
                "owners",
                {"200": done, **_errors(400, 404, 422, *_AUTH)},
            ),
        },
        "/v1/owners/{name}/key": {
            "parameters": [name_param],
            "post": _op(
                "rotateOwnerKey",
                "A new key; the previous one works for KEY_ROTATION_GRACE_MS more",
                "owners",
                {"200": _json(of(OwnerKey), "The new key"), **_errors(400, 404, *_AUTH)},
            ),
        },
        "/v1/owners/{name}/signing-secret": {
            "parameters": [name_param],
            "post": _op(
                "rotateOwnerSigningSecret",
                "A new signing secret; requests carry both signatures for KEY_ROTATION_GRACE_MS",
                "owners",
                {
                    "200": _json(of(OwnerSigningSecret), "The new signing secret"),
                    **_errors(400, 404, *_AUTH),
                },
            ),
        },
        "/v1/queues/register": {
            "post": _op(
                "registerQueue",
                "Register a task",
                "queues",
                {
                    "201": {**_json(of(QueueOut), "The task"), "links": _TASK_LINKS},
                    "200": {
                        **_json(of(QueueOut), "A repeat of an Idempotency-Key: the task as now"),
                        "headers": {
                            "Idempotent-Replayed": {
                                "description": "Nothing new was stored or executed",
                                "schema": {"const": "true"},
                            }
                        },
                    },
                    **_errors(400, 413, 422, *_AUTH),
                },
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Within IDEMPOTENCY_TTL_MS, a repeat with the same key "
                        "and body registers nothing new (another body: 422)",
                        "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
                    },
                    _TRACEPARENT,
                ],
                body=_body(of(QueueRegistration, "validation"), "The task", QUEUE_EXAMPLES),
            )
        },
        "/v1/queues/batch": {
            "post": _op(
                "registerBatch",
                "Register up to 1,000 tasks at once, all or none, with dependencies by ref",
                "batches",
                {
                    "201": _json(of(BatchOut), "The batch and its tasks"),
                    "200": _json(of(BatchOut), "A repeat of an Idempotency-Key: the batch as now"),
                    **_errors(400, 413, 422, *_AUTH),
                },
                body=_body(
                    of(BatchRegistration, "validation"),
                    "The tasks; a problem is named by the item's index (tasks[3]...)",
                    BATCH_EXAMPLES,
                ),
            )
        },
        "/v1/batches/{id}": {
            "parameters": [_path_param("id", ULID_PATTERN, "The batch id")],
            "get": _op(
                "getBatch",
                "A batch: its tasks and their dependencies",
                "batches",
                {"200": _json(of(BatchRead), "The batch"), **_errors(404, *_AUTH)},
            ),
        },
        "/v1/queues/bulk": {
            "post": _op(
                "bulkQueues",
                "Pause, resume, revoke, replay or delete many tasks (by ids or by state)",
                "queues",
                {
                    "200": _json(of(BulkOut), "What happened to each task"),
                    **_errors(400, 413, *_AUTH),
                },
                body=_body(of(Bulk, "validation"), "The action and the tasks"),
            )
        },
        "/v1/queues/{id}/attempts": {
            "parameters": [id_param],
            "get": _op(
                "listAttempts",
                "The task's attempts, oldest first",
                "queues",
                {
                    "200": _json({"type": "array", "items": of(AttemptOut)}, "The attempts"),
                    **_errors(400, 404, *_AUTH),
                },
                parameters=attempts_params,
            ),
        },
        "/v1/queues/{id}/replay": {
            "parameters": [id_param],
            "post": _op(
                "replayQueue",
                "Run a SUCCESS, ERROR or REVOKED task again",
                "queues",
                {"200": queue_out, **_errors(400, 404, 413, 422, *_AUTH)},
                body={**_body(of(Replay, "validation"), "When to run it"), "required": False},
            ),
        },
        "/v1/queues": {
            "get": _op(
                "listQueues",
                "List the owner's tasks",
                "queues",
                {
                    "200": _json({"type": "array", "items": of(QueueSummary)}, "The tasks"),
                    **_errors(400, *_AUTH),
                },
                parameters=list_params,
            )
        },
        "/v1/queues/{id}": {
            "parameters": [id_param],
            "get": _op(
                "getQueue",
                "Read a task",
                "queues",
                {"200": queue_out, **_errors(404, *_AUTH)},
            ),
            "patch": _op(
                "editQueue",
                "Edit a RUNNING or PAUSED task",
                "queues",
                {"200": queue_out, **_errors(400, 404, 413, 422, *_AUTH)},
                body=_body(
                    {
                        "type": "object",
                        "description": "An RFC 7396 JSON merge patch of the registration; "
                        "the merged document must be a valid QueueRegistration",
                    },
                    "The merge patch",
                ),
            ),
            "delete": _op(
                "deleteQueue", "Delete a task", "queues", {"200": done, **_errors(404, *_AUTH)}
            ),
        },
        "/v1/queues/{id}/config": {
            "parameters": [id_param],
            "get": _op(
                "getQueueConfig",
                "The redacted stored request and retry progress",
                "queues",
                {"200": _json(of(QueueConfigOut), "The config"), **_errors(404, *_AUTH)},
            ),
        },
    }
    # Open, or with ADMIN_KEY set, the admin bearer.
    paths["/v1/owners/register"]["post"]["security"] = [{}, {"admin": []}]
    for alias, path in _ALIASES.items():
        paths[alias] = _alias(paths[path], path)
    for verb, method, summary, success in (
        ("pause", "patch", "Pause a RUNNING task", done),
        ("resume", "patch", "Resume a PAUSED task", queue_out),
        ("revoke", "patch", "Revoke a RUNNING or PAUSED task", done),
        ("execute", "post", "Execute a RUNNING task now", done),
    ):
        paths[f"/v1/queues/{{id}}/{verb}"] = {
            "parameters": [id_param],
            method: _op(
                f"{verb}Queue", summary, "queues", {"200": success, **_errors(404, 422, *_AUTH)}
            ),
        }

    paths["/v1/stats"] = {
        "get": _op(
            "stats",
            "The owner's overview: attempts per minute by outcome, lateness, failing "
            "destinations, tasks by state",
            "queues",
            {"200": _json(of(StatsOut), "The overview"), **_errors(400, *_AUTH)},
            parameters=query(StatsQuery),
        )
    }

    schedule_id = _path_param("id", ULID_PATTERN, "The schedule id (a ULID)")
    schedule_out = _json(of(ScheduleOut), "The schedule")
    paths["/v1/schedules"] = {
        "post": _op(
            "createSchedule",
            "Create a recurring schedule: each fire time registers one task",
            "schedules",
            {"201": schedule_out, **_errors(400, 413, 422, *_AUTH)},
            parameters=[_TRACEPARENT],
            body=_body(of(ScheduleRegistration, "validation"), "The schedule"),
        ),
        "get": _op(
            "listSchedules",
            "List the owner's schedules, oldest first",
            "schedules",
            {
                "200": _json({"type": "array", "items": of(ScheduleOut)}, "The schedules"),
                **_errors(400, *_AUTH),
            },
            parameters=query(ScheduleListQuery),
        ),
    }
    paths["/v1/schedules/{id}"] = {
        "parameters": [schedule_id],
        "get": _op(
            "getSchedule",
            "Read a schedule",
            "schedules",
            {"200": schedule_out, **_errors(404, *_AUTH)},
        ),
        "patch": _op(
            "editSchedule",
            "Edit a schedule (JSON merge patch, validated in full)",
            "schedules",
            {"200": schedule_out, **_errors(400, 404, 413, 422, *_AUTH)},
            body=_body(
                {"type": "object", "description": "An RFC 7396 JSON merge patch of the schedule"},
                "The merge patch",
            ),
        ),
        "delete": _op(
            "deleteSchedule",
            "Delete a schedule (the tasks it registered stay)",
            "schedules",
            {"200": done, **_errors(404, *_AUTH)},
        ),
    }
    paths["/v1/schedules/{id}/config"] = {
        "parameters": [schedule_id],
        "get": _op(
            "getScheduleConfig",
            "The redacted request and config each fire registers",
            "schedules",
            {"200": _json(of(ScheduleConfigOut), "The config"), **_errors(404, *_AUTH)},
        ),
    }
    for verb, summary in (("pause", "Pause an ACTIVE schedule"), ("resume", "Resume a PAUSED one")):
        paths[f"/v1/schedules/{{id}}/{verb}"] = {
            "parameters": [schedule_id],
            "patch": _op(
                f"{verb}Schedule",
                summary,
                "schedules",
                {"200": schedule_out, **_errors(404, 422, *_AUTH)},
            ),
        }

    paths["/v1/destinations"] = {
        "get": _op(
            "listDestinations",
            "The owner's destinations an attempt failed to, with their circuits, the latest "
            "changed first",
            "destinations",
            {
                "200": _json({"type": "array", "items": of(DestinationOut)}, "The destinations"),
                **_errors(400, *_AUTH),
            },
            parameters=query(DestinationListQuery),
        ),
    }
    paths["/v1/destinations/{id}/reset"] = {
        "parameters": [_path_param("id", DESTINATION_ID_PATTERN, "The destination id")],
        "post": _op(
            "resetDestination",
            "Close the destination's circuit: its waiting tasks go at once",
            "destinations",
            {"200": _json(of(DestinationOut), "The destination"), **_errors(404, *_AUTH)},
        ),
    }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tasks Server",
            "version": __version__,
            "description": "Executes HTTP requests later: delays, exact times, retries.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_KEY, when set: `Authorization: Bearer <ADMIN_KEY>`",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The owner key: `Authorization: Bearer <key>`",
                },
                "ownerId": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Tasks-Owner-Id",
                    "description": "The owner id returned at registration",
                },
                "taskId": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Task-Id",
                    "description": "X-Tasks-Owner-Id under the original's later name "
                    "(1.0.0-beta.4), accepted alike",
                },
            },
        },
    }


def _alias(item: dict[str, Any], path: str) -> dict[str, Any]:
    """`item` (the operations of `path`) under the original's later name for it."""
    alias = copy.deepcopy(item)
    for method, op in alias.items():
        if method != "parameters":
            op["operationId"] += "AsTask"
            op["description"] = f"The original's 1.0.0-beta.4 name of `{method.upper()} {path}`."
    return alias


@cache
def _cached() -> dict[str, Any]:
    return _build()


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a copy of the cached one, so callers may change it)."""
    return copy.deepcopy(_cached())
