"""Schemathesis against the ASGI app, from its own /openapi.json: no 500, and every response
matches what the document promises (status code, content type, body schema).

One test per operation, a bounded derandomised example count. An owner is registered first and
its headers are sent, so authenticated routes get past auth. Targets are never contacted: the
transport refuses every request (the attempt fails), while option building still runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from tasks_server import app as app_module
from tasks_server.app import create_app
from tasks_server.executor.curl import CurlTransport
from tasks_server.executor.errors import TransportError
from tasks_server.openapi import build_openapi
from tests.conftest import MakeSettings

MAX_EXAMPLES = 20
TASK = {
    "httpRequest": {"url": "http://127.0.0.1:9/fuzz", "method": "POST", "data": "x"},
    "config": {"executionDelay": 3_600_000, "retry": 2},
    "metadata": {"from": "fuzz"},
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class OfflineTransport(CurlTransport):
    async def send(
        self, options: Sequence[tuple[int, Any]], *, max_body_bytes: int, pool: str
    ) -> Any:
        raise TransportError("the fuzz run contacts no target")


# The very document /openapi.json serves (test_openapi checks they are equal). Loaded from the
# dict, not through a fixture: schemathesis' lazy fixture loader does not run on pytest 9.
schema = schemathesis.openapi.from_dict(build_openapi())


@pytest.fixture
def fuzz_app(make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch) -> Starlette:
    # The lifespan starts with the first request; schemathesis' plugin ends it at teardown.
    monkeypatch.setattr(app_module, "CurlTransport", OfflineTransport)
    return create_app(make_settings())


@pytest.fixture
def owner_and_task(fuzz_app: Starlette) -> tuple[dict[str, str], str]:
    """An owner's auth headers and the id of a task it registered (due in an hour)."""
    case = schema["/v1/owners/register"]["POST"].Case(body={"name": "fuzz-owner"})
    response = case.call(app=fuzz_app)
    assert response.status_code == 201, response.text
    owner = response.json()
    headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
    case = schema["/v1/queues/register"]["POST"].Case(body=TASK)
    response = case.call(app=fuzz_app, headers=headers)
    assert response.status_code == 201, response.text
    return headers, response.json()["id"]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(
    case: schemathesis.Case, fuzz_app: Starlette, owner_and_task: tuple[dict[str, str], str]
) -> None:
    headers, task_id = owner_and_task
    if case.path_parameters and "id" in case.path_parameters:
        # A random id only ever finds nothing (404): aim the task routes at a real task.
        case.path_parameters["id"] = task_id
    case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS)
