"""Nodes sharing a PostgreSQL database fire on its clock, not their own (SPEC §3.5, §12)."""

from __future__ import annotations

import time

import pytest
from ulid import ULID

from tasks_server.models.queues import QueueRegistration
from tests.conftest import MakeSettings, open_client, register_owner
from tests.target import Target

DELAY_MS = 1_500


@pytest.mark.parametrize("step_s", [-60, 60])
async def test_a_node_whose_clock_is_stepped_fires_on_the_database_clock(
    make_settings: MakeSettings,
    target: Target,
    store_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    step_s: int,
) -> None:
    """A task another node registered, due in 1.5 s, runs no sooner on a node whose own
    clock is a minute off, and not a minute late either."""
    if store_kind != "postgres":
        pytest.skip("a lone SQLite server's own clock is the reference")
    real_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + step_s * 1_000_000_000)
    opened = open_client(make_settings())
    async with opened as client:
        owner_id = (await register_owner(client))["X-Tasks-Owner-Id"]
        svc = opened.services
        # Registered as another node with a right clock does: due on the database's clock.
        now = await svc.store.now()
        document = {"httpRequest": {"url": f"{target.url}/due", "method": "GET"}}
        reg = QueueRegistration.model_validate(document, context={"now": now})
        queue_id = str(ULID())
        await svc.store.insert(
            queue_id=queue_id,
            owner_id=owner_id,
            created_at=now,
            due=now + DELAY_MS,
            retry_limit=0,
            request=svc.codec.seal_request(reg, queue_id),
            metadata=None,
            limit=1000,
            lease=None,
            flow=svc.codec.flow(reg, owner_id),
        )
        await target.wait_hits("/due", 1, timeout=30)  # a minute late would be a failure
        sent_at = await svc.store.now()
    assert sent_at >= now + DELAY_MS  # never early
