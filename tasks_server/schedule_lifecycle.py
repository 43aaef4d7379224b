"""A schedule's life as a client changes it (SPEC §11.1): pause, resume and edit as typed
transitions, decided from the schedule as it is now by one pure function, as a task's are
(``lifecycle``); the store applies the ``ScheduleChange`` and bumps the version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tasks_server.cron import Cron, CronError
from tasks_server.lifecycle import KEEP, Assigned, Keep
from tasks_server.models.schedules import ScheduleState
from tasks_server.store.base import Rejected, ScheduleRow

__all__ = ["EditSchedule", "PauseSchedule", "ResumeSchedule", "ScheduleChange", "decide"]

ACTIVE, PAUSED = ScheduleState.ACTIVE.value, ScheduleState.PAUSED.value
STALE_EDIT = Rejected("The schedule changed while being edited; try again")


@dataclass(frozen=True, slots=True)
class ScheduleChange(Assigned):
    """The fields of a schedule a transition sets."""

    state: str | Keep = KEEP
    next_run_at: int | Keep = KEEP
    cron: str | Keep = KEEP
    timezone: str | Keep = KEEP
    request: bytes | Keep = KEEP
    metadata: bytes | Keep | None = KEEP
    labels: str | Keep | None = KEEP


@dataclass(frozen=True, slots=True)
class PauseSchedule:
    pass


@dataclass(frozen=True, slots=True)
class ResumeSchedule:
    now: int


@dataclass(frozen=True, slots=True)
class EditSchedule:
    """A new document, validated and sealed, for the schedule as read at version `seen`."""

    now: int
    seen: int
    cron: str
    timezone: str
    request: bytes
    metadata: bytes | None
    labels: str | None = None


ScheduleTransition = PauseSchedule | ResumeSchedule | EditSchedule


def decide(row: ScheduleRow, transition: ScheduleTransition) -> ScheduleChange | Rejected:
    """The change `transition` makes to the schedule `row`, or why it is refused."""
    if isinstance(transition, PauseSchedule):
        if row.state != ACTIVE:
            return Rejected(f"Only an ACTIVE schedule can be paused; this one is {row.state}")
        return ScheduleChange(state=PAUSED)
    if isinstance(transition, ResumeSchedule):
        return _resume(row, transition.now)
    return _edit(row, transition)


def _resume(row: ScheduleRow, now: int) -> ScheduleChange | Rejected:
    if row.state != PAUSED:
        return Rejected(f"Only a PAUSED schedule can be resumed; this one is {row.state}")
    try:
        cron = Cron(row.cron, row.timezone)
    except CronError as exc:  # stored before its checks existed: a PATCH mends it
        return Rejected(f"The schedule's {exc}; PATCH it first")
    # From now on: fire times that passed while paused are not caught up.
    return ScheduleChange(state=ACTIVE, next_run_at=cron.next_after(now))


def _edit(row: ScheduleRow, edit: EditSchedule) -> ScheduleChange | Rejected:
    if row.version != edit.seen:
        return STALE_EDIT
    change = ScheduleChange(
        cron=edit.cron,
        timezone=edit.timezone,
        request=edit.request,
        metadata=edit.metadata,
        labels=edit.labels,
    )
    if row.state != ACTIVE:
        return change
    # An active schedule fires next by its new cron; a paused one finds its time on resume.
    return replace(change, next_run_at=Cron(edit.cron, edit.timezone).next_after(edit.now))
