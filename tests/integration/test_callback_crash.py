"""kill -9 while a callback is in flight: after a restart it is delivered again (SPEC §11.2)."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.integration.server import ServerProcess
from tests.target import Step, Target


def _wait_task(http: httpx.Client, headers: dict[str, str], queue_id: str) -> dict[str, Any]:
    """Poll the API, as a user would, until the task has ended."""
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = http.get(f"/v1/queues/{queue_id}", headers=headers).json()
        if body["state"] in ("SUCCESS", "ERROR") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_callback_in_flight_at_a_kill_is_delivered_after_restart(tmp_path: Path) -> None:
    with Target() as target:
        # The first delivery is held unanswered: it is in flight when the server dies.
        target.script("/done", Step(delay_ms=60_000))
        server = ServerProcess(tmp_path).start()
        try:
            http = httpx.Client(base_url=server.url, timeout=10)
            owner = http.post("/v1/owners/register", json={"name": "crash-callbacks"}).json()
            headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}
            body = {
                "httpRequest": {"url": f"{target.url}/work", "method": "POST", "data": "job"},
                "config": {"callback": {"url": f"{target.url}/done"}},
                "metadata": {"job": "J-9"},
            }
            created = http.post("/v1/queues/register", json=body, headers=headers)
            assert created.status_code == 201, created.text
            parent_id = created.json()["id"]
            target.wait(lambda: len(target.hits_for("/done")) >= 1, 20)
        finally:
            killed = server.stop(signal.SIGKILL)
        assert killed == -signal.SIGKILL
        http.close()

        with ServerProcess(tmp_path) as again, httpx.Client(base_url=again.url) as http2:
            target.wait(lambda: len(target.hits_for("/done")) >= 2, 30)
            parent = http2.get(f"/v1/queues/{parent_id}", headers=headers).json()
            assert parent["state"] == "SUCCESS"
            child_id = parent["callbackQueueId"]
            child = _wait_task(http2, headers, child_id)
            assert child["state"] == "SUCCESS" and child["callbackOf"] == parent_id
            attempts = http2.get(f"/v1/queues/{child_id}/attempts", headers=headers).json()
            assert [a["outcome"] for a in attempts] == ["INTERRUPTED", "SUCCESS"]

        first, second = target.hits_for("/done")
        assert second.body == first.body
        assert second.headers["webhook-id"] == child_id
        assert orjson.loads(second.body) == {
            "queueId": parent_id,
            "state": "SUCCESS",
            "statusCode": 200,
            "attempts": 1,
            "response": base64.b64encode(b"ok").decode(),
            "metadata": {"job": "J-9"},
            "scheduleId": None,
        }
        assert len(target.hits_for("/work")) == 1  # the task itself had ended: not sent again
