"""/metrics of a real server, alone and in cluster mode (multiprocess files)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tasks_server import __version__
from tests.api.test_metrics import UNKNOWN_ID, _sample
from tests.integration.server import ServerProcess

PROCESSES = 2


@pytest.mark.parametrize("cluster", [False, True], ids=["one-process", "cluster"])
def test_metrics_carry_process_build_and_request_series(tmp_path: Path, cluster: bool) -> None:
    env = {"CLUSTER_MODE": "1", "MAX_INSTANCES": str(PROCESSES)} if cluster else {}
    with ServerProcess(tmp_path, **env) as server:
        registered = httpx.post(f"{server.url}/v1/owners/register", json={"name": "metrics"})
        owner = registered.json()
        headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
        for _ in range(4):  # new connections: spread over the workers in cluster mode
            httpx.get(f"{server.url}/v1/queues/{UNKNOWN_ID}", headers=headers)
        text = httpx.get(f"{server.url}/metrics").text
    assert (_sample(text, "process_resident_memory_bytes") or 0) > 0
    assert _sample(text, "tasks_build_info", version=__version__) == 1
    route = "/v1/queues/{id}"
    assert _sample(text, "tasks_http_requests_total", route=route, method="GET", status="404") == 4
    assert _sample(text, "tasks_http_requests_total", route="/status", method="GET", status="200")
    assert [line for line in text.splitlines() if "_created" in line] == []
