"""The callback task's request (tasks_server/callbacks.py): the server's own, not a client's."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from tasks_server import callbacks
from tasks_server.codec import TaskCodec
from tasks_server.crypto import Cipher
from tasks_server.models.queues import Callback, QueueConfig, QueueRegistration

FINISHED = callbacks.Finished(
    queue_id="01JD0000000000000000000001",
    state="SUCCESS",
    status_code=200,
    attempts=3,
    response=b"\x00" * 6000,  # base64: 8000 characters, over a client's 4096
    metadata={"k": "v"},
    schedule_id=None,
)


def test_a_long_outcome_is_stored_and_read_back_but_a_client_may_not_send_it() -> None:
    codec = TaskCodec(Cipher.from_secret("unit-test-key"))
    callback = Callback(url="http://127.0.0.1:9/done", headers={"X-A": "b"})
    task = callbacks.task(
        codec, callback, "success", FINISHED, queue_id="CHILD", now=1000, ip_version=4
    )
    assert (task.due, task.created_at, task.retry_limit) == (1000, 1000, callbacks.RETRIES)
    reg = codec.open_request(task.request, "CHILD")
    assert callbacks.kind_of(reg) == "success"
    assert reg.http_request.headers == {
        "X-A": "b",
        "Content-Type": "application/json",
        "X-Tasks-Callback": "success",
    }
    data = reg.http_request.data
    assert isinstance(data, dict) and len(data["response"]) == 8000
    document = orjson.loads(orjson.dumps(reg.model_dump(mode="json", by_alias=True)))
    with pytest.raises(ValidationError) as refused:
        QueueRegistration.model_validate(document)
    text = str(refused.value)
    assert "strings are at most 4096 characters" in text and "the server sets it" in text


@pytest.mark.parametrize(
    ("url", "parent", "expected"),
    [
        ("http://127.0.0.1:9/done", 4, 4),
        ("http://[::1]:9/done", 4, 6),
        ("http://localhost:9/done", 6, 6),
    ],
)
def test_names_resolve_as_the_parent_does_unless_the_host_is_ipv6(
    url: str, parent: int, expected: int
) -> None:
    reg = callbacks.request(Callback(url=url), "failure", FINISHED, parent)
    assert reg.config.ip_version == expected and reg.config.retry_backoff == "exponential"


def test_which_callback_an_outcome_wants() -> None:
    config = QueueConfig.model_validate(
        {
            "callback": {"url": "http://127.0.0.1:9/a"},
            "failureCallback": {"url": "http://127.0.0.1:9/b"},
        }
    )
    assert callbacks.wanted(config, "SUCCESS") == ("success", config.callback)
    assert callbacks.wanted(config, "ERROR") == ("failure", config.failure_callback)
    assert callbacks.wanted(config, None) is None
    assert callbacks.wanted(QueueConfig(), "SUCCESS") is None
