"""A serving process freezes what start-up made and collects young objects less often."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks_server import app, cli, gc_policy
from tasks_server.settings import Settings


def test_tuning_freezes_start_up_and_raises_the_first_threshold() -> None:
    # In a child process: the suite's own collector stays as CPython sets it.
    code = (
        "import gc; from tasks_server import gc_policy; gc_policy.tune_for_serving(); "
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(gc_policy.FIRST_THRESHOLD), "True"]


@pytest.fixture
def tuned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(gc_policy, "tune_for_serving", lambda: calls.append("tuned"))
    return calls


def test_serve_tunes_before_serving(
    tmp_path: Path, tuned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli._Server, "run", lambda self: tuned.append("run"))
    settings = Settings(path_sqlite=tmp_path / "tasks.db", cipher_key="k" * 32)
    with pytest.raises(SystemExit):  # `run` did not start serving
        cli.serve(settings)
    assert tuned == ["tuned", "run"]


def test_every_cluster_worker_tunes(
    tmp_path: Path, tuned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH_SQLITE", str(tmp_path / "tasks.db"))
    app.create_app_from_env()
    assert tuned == ["tuned"]
