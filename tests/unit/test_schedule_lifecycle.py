"""Every schedule state × transition: the change it makes or the refusal the API sends."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks_server.cron import Cron
from tasks_server.schedule_lifecycle import (
    STALE_EDIT,
    EditSchedule,
    PauseSchedule,
    ResumeSchedule,
    ScheduleChange,
    decide,
)
from tasks_server.store.base import Rejected, ScheduleRow

NOW = 1_800_000_000_000
ROW = ScheduleRow(
    id="s",
    owner_id="o",
    state="ACTIVE",
    cron="*/5 * * * *",
    timezone="UTC",
    created_at=NOW - 1,
    next_run_at=NOW + 60_000,
    last_run_at=0,
    last_queue_id=None,
    version=3,
    request=b"sealed",
    metadata=None,
)
EDIT = EditSchedule(NOW, 3, "0 9 * * *", "Europe/Paris", b"sealed-2", b"meta")


def test_an_active_schedule_pauses_and_a_paused_one_is_refused() -> None:
    assert decide(ROW, PauseSchedule()) == ScheduleChange(state="PAUSED")
    refused = decide(replace(ROW, state="PAUSED"), PauseSchedule())
    assert refused == Rejected("Only an ACTIVE schedule can be paused; this one is PAUSED")


def test_a_paused_schedule_resumes_from_now_and_an_active_one_is_refused() -> None:
    change = decide(replace(ROW, state="PAUSED"), ResumeSchedule(NOW))
    assert change == ScheduleChange(
        state="ACTIVE", next_run_at=Cron("*/5 * * * *", "UTC").next_after(NOW)
    )
    refused = decide(ROW, ResumeSchedule(NOW))
    assert refused == Rejected("Only a PAUSED schedule can be resumed; this one is ACTIVE")


def test_a_schedule_whose_stored_cron_no_longer_parses_must_be_patched_to_resume() -> None:
    broken = replace(ROW, state="PAUSED", cron="61 * * * *")
    refused = decide(broken, ResumeSchedule(NOW))
    assert isinstance(refused, Rejected) and refused.message.endswith("; PATCH it first")


@pytest.mark.parametrize("state", ["ACTIVE", "PAUSED"])
def test_an_edit_replaces_the_document_and_an_active_schedule_fires_by_its_new_cron(
    state: str,
) -> None:
    change = decide(replace(ROW, state=state), EDIT)
    assert isinstance(change, ScheduleChange)
    assigned = change.assigned()
    assert {k: assigned[k] for k in ("cron", "timezone", "request", "metadata")} == {
        "cron": "0 9 * * *",
        "timezone": "Europe/Paris",
        "request": b"sealed-2",
        "metadata": b"meta",
    }
    expected = Cron("0 9 * * *", "Europe/Paris").next_after(NOW) if state == "ACTIVE" else None
    assert assigned.get("next_run_at") == expected
    assert "state" not in assigned


def test_an_edit_of_a_schedule_changed_since_it_was_read_is_refused() -> None:
    assert decide(replace(ROW, version=4), EDIT) is STALE_EDIT
