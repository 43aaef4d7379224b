"""The bench's executor alone (`scripts.benchmark.executor`): every request it counts reaches
the target, once, with its own task id, so the figure it prints beside the raw loop is real."""

from __future__ import annotations

import pytest

from scripts.benchmark.executor import executor_rps
from tests.target import Step, Target


def test_the_executor_alone_sends_every_request_once() -> None:
    with Target() as target:
        rate = executor_rps(f"{target.url}/alone", 60, 8)
        hits = target.hits_for("/alone")
    assert rate > 0
    assert len(hits) == 60
    assert len({hit.queue_id for hit in hits}) == 60
    assert all(hit.method == "GET" for hit in hits)


def test_the_executor_alone_says_when_requests_fail(capsys: pytest.CaptureFixture[str]) -> None:
    with Target() as target:
        target.script("/failing", *[Step(status=500)] * 5)
        executor_rps(f"{target.url}/failing", 5, 5)
    assert "executor alone: 5 requests failed" in capsys.readouterr().out
