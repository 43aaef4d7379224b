"""kill -9 while tasks are due and in flight: after a restart every task still completes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import STARTUP_TIMEOUT_S, ServerProcess
from tests.polling import eventually, paced_by
from tests.target import Step, Target

# Two starts, the registrations and the run after the restart.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2 * STARTUP_TIMEOUT_S + 300)]

TASKS = 300
SLOW = 60  # the first tasks: in flight when the kill comes
HOLD_MS = 600_000  # their first answer comes only after the test, however slow the machine


def _succeeded(http: httpx.Client, headers: dict[str, str]) -> int:
    params = {"state": "SUCCESS", "limit": 1000}
    return len(http.get("/v1/queues", params=params, headers=headers).json())


def _register(http: httpx.Client, target: Target) -> tuple[dict[str, str], list[str]]:
    """An owner's auth headers and the ids of its TASKS tasks, the SLOW ones due at once."""
    owner = http.post("/v1/owners/register", json={"name": "crash-owner"}).json()
    headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
    ids = []
    for n in range(TASKS):
        slow = n < SLOW
        body = {
            "httpRequest": {
                "url": f"{target.url}/slow/{n}" if slow else f"{target.url}/later/{n}",
                "method": "POST",
                "data": str(n),
            },
            "config": {
                "executionDelay": 1 if slow else 500 + 10 * n,
                "timeout": HOLD_MS if slow else 10_000,
            },
        }
        response = http.post("/v1/queues/register", json=body, headers=headers)
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return headers, ids


def test_sigkill_loses_no_acknowledged_task(tmp_path: Path) -> None:
    with Target() as target:
        for n in range(SLOW):
            target.script(f"/slow/{n}", Step(delay_ms=HOLD_MS))
        server = ServerProcess(tmp_path).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                began = time.monotonic()
                headers, ids = _register(http, target)
                registering_s = time.monotonic() - began
            target.wait(lambda: sum(h.path.startswith("/slow/") for h in target.hits) >= SLOW, 60)
        finally:
            killed = server.stop(signal.SIGKILL)
        assert killed == -signal.SIGKILL

        with ServerProcess(tmp_path) as again, httpx.Client(base_url=again.url) as http2:
            # Running a task costs about what registering it did; the last is due 3.5 s on.
            bound = 3.5 + paced_by(registering_s)
            eventually(lambda: _succeeded(http2, headers) == TASKS, bound, "every task SUCCESS")
            # The attempt in flight at the kill is closed as INTERRUPTED, not as a retry.
            for queue_id in ids[:SLOW]:
                rows = http2.get(f"/v1/queues/{queue_id}/attempts", headers=headers).json()
                assert [(r["attempt"], r["outcome"]) for r in rows] == [
                    (1, "INTERRUPTED"),
                    (2, "SUCCESS"),
                ]
                config = http2.get(f"/v1/queues/{queue_id}/config", headers=headers).json()
                assert config["retryCount"] == 0
        seen = {hit.queue_id for hit in target.hits}
        assert set(ids) <= seen
        # The slow ones were in flight at the kill: sent again after the restart.
        for n in range(SLOW):
            assert len(target.hits_for(f"/slow/{n}")) >= 2
