"""`config.maxLateness` (SPEC §18.2): a task that cannot start within that time of its due
time ends ERROR with an attempt `EXPIRED`, its request never sent late."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from ulid import ULID

from tasks_server.models.queues import QueueRegistration
from tasks_server.services import Services
from tests.api.test_callbacks import callback_of
from tests.api.test_metrics import _sample
from tests.api.test_queues import wait_state
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Target

LATE_MS = 5_000  # how long before now the tasks were due: as after a server was down


async def insert_overdue(svc: Services, owner_id: str, document: dict[str, Any]) -> str:
    """Store a task due LATE_MS ago, as a server that was down finds it at start."""
    now = await svc.store.now()
    reg = QueueRegistration.model_validate(document, context={"now": now})
    queue_id = str(ULID())
    await svc.store.insert(
        queue_id=queue_id,
        owner_id=owner_id,
        created_at=now - LATE_MS,
        due=now - LATE_MS,
        retry_limit=reg.config.retry,
        request=svc.codec.seal_request(reg, queue_id),
        metadata=None,
        limit=1000,
        lease=None,
    )
    return queue_id


async def test_a_task_later_than_its_max_lateness_expires_unsent(
    make_settings: MakeSettings, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks_server.scheduler")
    opened = open_client(make_settings())
    async with opened as client:
        owner = await register_owner(client)
        expiring = {
            "httpRequest": {"url": f"{target.url}/expiring", "method": "POST", "data": "code"},
            "config": {
                "maxLateness": 1_000,
                "retry": 3,
                "failureCallback": {"url": f"{target.url}/failed"},
            },
        }
        tolerant = {
            "httpRequest": {"url": f"{target.url}/tolerant", "method": "GET"},
            "config": {"maxLateness": 600_000},
        }
        owner_id = owner["X-Tasks-Owner-Id"]
        expired_id = await insert_overdue(opened.services, owner_id, expiring)
        sent_id = await insert_overdue(opened.services, owner_id, tolerant)

        (failure,) = await target.wait_hits("/failed", 1)
        done = await wait_state(client, owner, expired_id, "ERROR")
        assert done["statusCode"] == 0
        attempts = (await client.get(f"/v1/queues/{expired_id}/attempts", headers=owner)).json()
        assert [(a["attempt"], a["outcome"], a["statusCode"]) for a in attempts] == [
            (1, "EXPIRED", 0)
        ]
        assert "maxLateness" in attempts[0]["error"]
        assert attempts[0]["latenessMs"] >= LATE_MS
        (logged,) = [r for r in caplog.records if getattr(r, "outcome", None) == "EXPIRED"]
        assert logged.queue_id == expired_id and logged.lateness_ms >= LATE_MS
        assert orjson.loads(failure.body)["state"] == "ERROR"
        await callback_of(client, owner, expired_id)
        await wait_state(client, owner, sent_id, "SUCCESS")
        assert target.hits_for("/expiring") == []  # never sent, and no retry spent on it
        assert len(target.hits_for("/tolerant")) == 1
        text = (await client.get("/metrics")).text
        assert _sample(text, "tasks_attempts_total", outcome="EXPIRED", status_class="none") == 1


@pytest.mark.parametrize(
    "config",
    [
        {"maxLateness": 0},
        {"maxLateness": -5},
        {"maxLateness": "soon"},
        {"maxLateness": 1.5},
    ],
)
async def test_bad_max_lateness_is_refused(
    client: httpx.AsyncClient, config: dict[str, Any]
) -> None:
    owner = await register_owner(client)
    body = {"httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"}, "config": config}
    response = await client.post("/v1/queues/register", json=body, headers=owner)
    assert response.status_code == 400, response.text
    assert next(iter(config)) in response.text


async def test_openapi_documents_max_lateness_and_expired(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert "maxLateness" in schemas["QueueConfig"]["properties"]
    assert "EXPIRED" in schemas["AttemptOutcome"]["enum"]
