"""CLUSTER_MODE=1: several processes on one port and one database run each task once."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess
from tests.target import Target

pytestmark = pytest.mark.slow

TASKS = 1500


def test_processes_share_the_port_and_run_each_task_exactly_once(tmp_path: Path) -> None:
    with Target() as target, ServerProcess(tmp_path, CLUSTER_MODE=1, MAX_INSTANCES=3) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            owner = http.post("/v1/owners/register", json={"name": "cluster-owner"}).json()
            headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
            ids = []
            for n in range(TASKS):
                body = {
                    "httpRequest": {"url": f"{target.url}/c/{n}", "method": "GET"},
                    "config": {"executionDelay": 2500 + n},
                }
                response = http.post(
                    "/v1/queues/register", json=body, headers={**headers, "Connection": "close"}
                )
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            target.wait(lambda: len(target.hits) >= TASKS, timeout=60)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = http.get(
                    "/v1/queues", params={"state": "SUCCESS", "limit": 1000}, headers=headers
                ).json()
                if len(done) == 1000:
                    break
                time.sleep(0.1)  # polling the API, as a user would
        counts = collections.Counter(hit.queue_id for hit in target.hits)
        assert set(counts) == set(ids)
        assert max(counts.values()) == 1
    assert "Started parent process" in server.output()
    assert server.output().count("Application startup complete") == 3
