"""W3C trace context (SPEC §19.2): what a registration's traceparent may be, what an attempt
sends, and a server without the SDK."""

from __future__ import annotations

import logging
import random
import sys

import pytest

from tasks_server import tracing
from tasks_server.codec import TaskCodec
from tasks_server.crypto import Cipher
from tasks_server.models.queues import QueueRegistration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_kept_as_version_00() -> None:
    assert tracing.parse(PARENT) == PARENT
    assert tracing.parse(f" {PARENT} ") == PARENT
    # A later version is read as 00 (W3C Trace Context §3.2.4): its extra fields dropped.
    assert tracing.parse(f"cc-{TRACE}-00f067aa0ba902b7-00-what-the-future-holds") == (
        f"00-{TRACE}-00f067aa0ba902b7-00"
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is forbidden
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # lowercase hex only
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7-1",
    ],
)
def test_a_malformed_traceparent_is_refused(value: str) -> None:
    with pytest.raises(tracing.InvalidTraceparent):
        tracing.parse(value)


def test_a_child_keeps_the_trace_and_the_flags_with_a_new_span() -> None:
    children = {tracing.child(PARENT) for _ in range(50)}
    assert len(children) == 50
    for value in children:
        assert tracing.parse(value) == value
        version, trace_id, span_id, flags = value.split("-")
        assert (version, trace_id, flags) == ("00", TRACE, "01")
        assert span_id != "00f067aa0ba902b7"
    assert tracing.child(PARENT[:-2] + "00").endswith("-00")


def test_without_an_exporter_there_is_no_span() -> None:
    assert tracing.Tracing().attempt(PARENT) is None
    assert tracing.Tracing().registration("task.register", PARENT) is None


def test_the_sealed_request_keeps_the_trace_context_beside_the_owners_document() -> None:
    codec = TaskCodec(Cipher.from_secret("tracing-test"))
    document = {"httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"}}
    reg = QueueRegistration.model_validate(document).traced(PARENT)
    blob = codec.seal_request(reg, "q1")
    opened = codec.open_request(blob, "q1")
    assert opened.traceparent == PARENT and opened.http_request.url == "http://127.0.0.1:9/x"
    assert codec.open_document(blob, "q1")[tracing.STORED] == PARENT
    untraced = codec.seal_request(QueueRegistration.model_validate(document), "q2")
    assert codec.open_request(untraced, "q2").traceparent is None
    assert tracing.STORED not in codec.open_document(untraced, "q2")


def test_an_endpoint_without_the_sdk_logs_one_warning_and_exports_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As if the extra were not installed: importing the SDK's exporter fails.
    monkeypatch.delitem(sys.modules, "tasks_server.otel", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="tasks_server.tracing"):
        traced = tracing.Tracing.from_endpoint("http://127.0.0.1:4318")
    (record,) = caplog.records
    assert "tasks-server[tracing]" in record.getMessage()
    assert traced.registration("task.register", None) is None
    traced.shutdown()


def test_a_child_leaves_the_global_random_state_alone() -> None:
    """Span ids come from the module's own generator: an attempt in the background must not
    move the state of `random` other code (a test's strategies, a seeded simulation) relies on."""
    before = random.getstate()
    tracing.child("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert random.getstate() == before
