"""A schedule's life as a client changes it (SPEC §11.1): pause, resume and edit as typed
transitions, decided from the schedule as it is now by one pure function, as a task's are
(``lifecycle``); the store applies the ``ScheduleChange`` and bumps the version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tasks_server.cron import Cron, CronError
from tasks_server.lifecycle import KEEP, Assigned, Keep
from tasks_server.models.schedules import ScheduleState
from tasks_server.store.base import Rejected, ScheduleRow

__all__ = [
    "LATE_MS",
    "EditSchedule",
    "Fire",
    "PauseSchedule",
    "ResumeSchedule",
    "ScheduleChange",
    "decide",
    "plan_fire",
]

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


LATE_MS = 1_000  # a fire time further in the past was missed (no server ran at the time)


@dataclass(frozen=True, slots=True)
class Fire:
    """What a schedule does with its next fire time: a task due at `due` (None: none, the
    time is skipped), and the fire time after it."""

    due: int | None
    next_run_at: int


def plan_fire(
    cron: Cron, fire_at: int, now: int, *, missed_runs: str, catch_up_window: int
) -> Fire:
    """The fire of `fire_at` at `now` (SPEC §11.1, §18.3). On time: a task due then. Missed,
    by `missed_runs`: "one" catch-up task due now, then on from now; "skip" it and go on from
    now; "all": each missed time within `catch_up_window` a task due now, one after the other
    (the older ones skipped at once)."""
    if fire_at >= now - LATE_MS:
        return Fire(fire_at, cron.next_after(max(fire_at, now)))
    if missed_runs == "one":
        return Fire(now, cron.next_after(now))
    if missed_runs == "skip":
        return Fire(None, cron.next_after(now))
    oldest = now - catch_up_window
    if fire_at < oldest:
        return Fire(None, max(fire_at + 1, cron.next_after(oldest - 1)))
    return Fire(now, cron.next_after(fire_at))
