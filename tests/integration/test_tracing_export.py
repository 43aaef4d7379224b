"""Tracing through `tasks-server serve` itself (SPEC §19.2): OTEL_EXPORTER_OTLP_ENDPOINT in the
environment, a real OTLP/HTTP receiver and a real target; SIGTERM flushes what is queued."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.server import ServerProcess
from tests.otlp import OtlpReceiver
from tests.polling import eventually
from tests.target import Target

TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def test_a_served_registration_and_its_attempt_are_exported_and_the_target_joins_the_trace(
    tmp_path: Path,
) -> None:
    with OtlpReceiver() as receiver, Target() as target:
        server = ServerProcess(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"{receiver.url}/",  # a trailing slash is fine
            OTEL_BSP_SCHEDULE_DELAY="60000",  # nothing leaves before the flush at stop
            CIPHER_KEY="tracing-export",
        )
        with server:
            owner = httpx.post(f"{server.url}/v1/owners/register", json={"name": "traced"}).json()
            headers = {
                "Authorization": f"Bearer {owner['key']}",
                "X-Tasks-Owner-Id": owner["id"],
                "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01",
            }
            body = {"httpRequest": {"url": f"{target.url}/hook", "method": "GET"}}
            response = httpx.post(f"{server.url}/v1/queues/register", json=body, headers=headers)
            assert response.status_code == 201, response.text
            (hit,) = eventually(lambda: target.hits_for("/hook"), 30, "the target's request")
            version, trace_id, span_id, flags = hit.headers["traceparent"].split("-")
            assert (version, trace_id, flags) == ("00", TRACE, "01")
            assert receiver.spans == []  # still queued in the server
        assert server.process is not None and server.process.returncode == 0
        (register,) = receiver.named("task.register")
        (attempt,) = receiver.named("task.attempt")
    assert (register.trace_id, register.parent_span_id) == (TRACE, CLIENT_SPAN)
    assert (attempt.trace_id, attempt.parent_span_id) == (TRACE, register.span_id)
    assert attempt.span_id == span_id and attempt.attributes["tasks.outcome"] == "SUCCESS"
    assert attempt.attributes["tasks.task_id"] == response.json()["id"]
