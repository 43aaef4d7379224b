"""kill -9 while tasks are due and in flight: after a restart every task still completes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess
from tests.target import Step, Target

pytestmark = pytest.mark.slow

TASKS = 300


def _wait_all_succeeded(http: httpx.Client, headers: dict[str, str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        rows = http.get(
            "/v1/queues", params={"state": "SUCCESS", "limit": 1000}, headers=headers
        ).json()
        if len(rows) == TASKS or time.monotonic() > deadline:
            return len(rows)
        time.sleep(0.1)  # polling the API, as a user would


def test_sigkill_loses_no_acknowledged_task(tmp_path: Path) -> None:
    with Target() as target:
        for n in range(60):  # the first tasks are slow: in flight when the kill comes
            # Long enough that all 60 are still in flight when the last one arrives, under load.
            target.script(f"/slow/{n}", Step(delay_ms=8000))
        server = ServerProcess(tmp_path).start()
        http = httpx.Client(base_url=server.url, timeout=10)
        owner = http.post("/v1/owners/register", json={"name": "crash-owner"}).json()
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        ids = []
        for n in range(TASKS):
            slow = n < 60
            body = {
                "httpRequest": {
                    "url": f"{target.url}/slow/{n}" if slow else f"{target.url}/later/{n}",
                    "method": "POST",
                    "data": str(n),
                },
                "config": {"executionDelay": 1 if slow else 500 + 10 * n, "timeout": 10000},
            }
            response = http.post("/v1/queues/register", json=body, headers=headers)
            assert response.status_code == 201
            ids.append(response.json()["id"])
        target.wait(lambda: sum(h.path.startswith("/slow/") for h in target.hits) >= 60, 20)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        http.close()

        with ServerProcess(tmp_path) as again, httpx.Client(base_url=again.url) as http2:
            assert _wait_all_succeeded(http2, headers, timeout=60) == TASKS
            # The attempt in flight at the kill is closed as INTERRUPTED, not as a retry.
            for queue_id in ids[:60]:
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
        for n in range(60):
            assert len(target.hits_for(f"/slow/{n}")) >= 2
