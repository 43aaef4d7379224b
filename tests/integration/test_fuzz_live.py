"""Stateful schemathesis against the live server process: scenarios follow the OpenAPI links
from a registered task to every task route, as an owner, and find no 500 and no response that
breaks the document.

The server is real, so no generated task may reach the network: every body that could set a
due time gets one an hour away, and `execute`, `replay` and `bulk` (which can replay) are left
to the in-process fuzz run (test_fuzz.py), whose transport contacts nothing. The server is
stopped before any task falls due.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.stateful import OpenAPIStateMachine

from tasks_server.openapi import build_openapi
from tests.api.test_fuzz import CHECKS
from tests.integration.server import STARTUP_TIMEOUT_S, ServerProcess

SCENARIOS = 60
# A few hundred requests: half a minute beside a CPU hog on two cores; bounded well above.
pytestmark = pytest.mark.timeout(STARTUP_TIMEOUT_S + 300)
FAR_AWAY_MS = 3_600_000

# Scenarios replay against one server, so none may change what later ones find, and the
# task routes are what they are about: they are chosen by name, so a route added elsewhere
# neither dilutes the scenarios nor runs here unvetted. Left to the in-process fuzz run
# (test_fuzz.py): execute, replay and bulk (which can replay), batches (their tasks' due times
# are not moved away), schedules (they fire tasks at generated URLs), owners' rotations and
# deletions (a second rotation ends the first key's grace), and the rest.
TASK_ROUTES = [
    "registerQueue",
    "listQueues",
    "getQueue",
    "editQueue",
    "deleteQueue",
    "getQueueConfig",
    "listAttempts",
    "pauseQueue",
    "resumeQueue",
    "revokeQueue",
    "getOwner",
]
schema = schemathesis.openapi.from_dict(build_openapi()).include(operation_id=TASK_ROUTES)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A running server and the auth headers of an owner registered on it."""
    workdir: Path = tmp_path_factory.mktemp("fuzz-live")
    with ServerProcess(workdir, LOG=0) as server:
        owner = httpx.post(f"{server.url}/v1/owners/register", json={"name": "live-fuzz"}).json()
        yield (
            server.url,
            {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]},
        )
        assert "Traceback" not in server.output()


def _far_away(body: Any) -> Any:
    """The body with any due time it could set moved an hour away (merge patches included)."""
    if isinstance(body, dict):
        config = body.get("config")
        config = dict(config) if isinstance(config, dict) else {}
        config.pop("executeAt", None)
        config["executionDelay"] = FAR_AWAY_MS
        body = {**body, "config": config}
    return body


def test_stateful_scenarios_find_no_error(live: tuple[str, dict[str, str]]) -> None:
    base_url, headers = live
    seen: dict[str, set[int]] = collections.defaultdict(set)

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            if case.operation.method.upper() in ("POST", "PATCH") and case.body is not None:
                case.body = _far_away(case.body)
            if case.headers:
                case.headers.pop("Idempotency-Key", None)

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            seen[case.operation.label].add(response.status_code)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    assert issubclass(Scenarios, OpenAPIStateMachine)
    Scenarios.run(
        settings=settings(
            max_examples=SCENARIOS,
            derandomize=True,
            database=None,
            deadline=None,
            stateful_step_count=6,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The scenarios did follow the links: registered tasks were found or changed by id.
    assert 201 in seen["POST /v1/queues/register"]
    by_id = [label for label in seen if label.split(" ", 1)[1].startswith("/v1/queues/{id}")]
    assert any(200 in seen[label] for label in by_id), dict(seen)
