"""A task's life (SPEC §3, §16.1): each request of a client is a typed transition, and one pure
function decides, from the task as it is now, the change it makes or the refusal the API
answers with 422; `ending` decides what an attempt's outcome makes of it.

The API builds a transition with everything it needs already opened and validated (a resumed
task's ``executeAt``, a replay's resealed request), so deciding runs inside the store's
transaction without decrypting or validating anything; the store applies the ``Change`` and
bumps the version. A transition built from what a task held when it was read carries that
version (``seen``) and is refused as ``STALE`` if the task changed since: the caller reads it
again and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Final

from tasks_server.models.queues import QueueState
from tasks_server.store.base import NO_LISTING, Due, Flow, Listing, QueueRow, Rejected

__all__ = [
    "IN_FLIGHT_MESSAGE",
    "KEEP",
    "STALE",
    "Assigned",
    "Change",
    "Edit",
    "Execute",
    "Keep",
    "Pause",
    "Replay",
    "Resume",
    "Revoke",
    "Transition",
    "decide",
    "edit_refusal",
    "ending",
    "expired",
    "linked",
]

RUNNING, PAUSED, WAITING = (
    QueueState.RUNNING.value,
    QueueState.PAUSED.value,
    QueueState.WAITING.value,
)
SUCCESS, ERROR, REVOKED = QueueState.SUCCESS.value, QueueState.ERROR.value, QueueState.REVOKED.value
IN_FLIGHT_MESSAGE = "The task is being executed right now; try again when it returns"
STALE: Final = Rejected("stale")  # the task changed since the transition was built


class Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep()  # a field the change leaves as it is (None sets it empty)


class Assigned:
    """A change as dataclass fields, each KEEP unless the change sets it."""

    __slots__ = ()

    def assigned(self) -> dict[str, object]:
        """The fields this change sets, by name."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]
        return {name: value for name, value in values if value is not KEEP}


@dataclass(frozen=True, slots=True)
class Change(Assigned):
    """The fields of a task a transition sets."""

    state: str | Keep = KEEP
    paused_at: int | Keep | None = KEEP
    estimate_execution_at: int | Keep = KEEP
    estimate_end_at: int | Keep = KEEP
    retry_count: int | Keep = KEEP
    retry_limit: int | Keep = KEEP
    request: bytes | Keep = KEEP
    metadata: bytes | Keep | None = KEEP
    flow: Flow | Keep | None = KEEP
    release_delay: int | Keep = KEEP
    listing: Listing | Keep = KEEP


@dataclass(frozen=True, slots=True)
class Pause:
    now: int


@dataclass(frozen=True, slots=True)
class Resume:
    """``execute_at``: the task's ``executeAt`` when it also asked ``executeImmediately``."""

    now: int
    seen: int
    execute_at: int | None = None


@dataclass(frozen=True, slots=True)
class Revoke:
    now: int


@dataclass(frozen=True, slots=True)
class Execute:
    now: int


@dataclass(frozen=True, slots=True)
class Replay:
    """``request``/``retry_limit``: the request resealed without the first run's absolute
    times (``timeoutAt``, ``retryAt``), when it had any."""

    now: int
    seen: int
    delay: int = 0
    request: bytes | None = None
    retry_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """A new request; ``due`` is set when its timing fields changed, with what they say for
    a task still waiting for its dependencies: its ``executeAt`` (0: none) and the
    ``executionDelay`` that counts from its release."""

    now: int
    seen: int
    request: bytes
    metadata: bytes | None
    retry_limit: int
    flow: Flow | None
    due: int | None
    release: tuple[int, int] = (0, 0)
    listing: Listing = NO_LISTING


Transition = Pause | Resume | Revoke | Execute | Replay | Edit


def decide(row: QueueRow, transition: Transition) -> Change | Rejected:
    """The change `transition` makes to the task `row`, or why it is refused."""
    if isinstance(transition, Pause):
        return _unless(row, "paused", RUNNING, WAITING) or Change(
            state=PAUSED, paused_at=transition.now, estimate_end_at=transition.now
        )
    if isinstance(transition, Resume):
        return _unless(row, "resumed", PAUSED) or _resume(row, transition)
    if isinstance(transition, Revoke):
        return _unless(row, "revoked", RUNNING, PAUSED, WAITING) or Change(
            state=REVOKED, estimate_end_at=transition.now, paused_at=None
        )
    if isinstance(transition, Execute):
        if refused := _unless(row, "executed", RUNNING):
            return refused
        return (
            Rejected(IN_FLIGHT_MESSAGE)
            if row.in_flight
            else Change(estimate_execution_at=transition.now)
        )
    if isinstance(transition, Replay):
        return _unless(row, "replayed", SUCCESS, ERROR, REVOKED) or _replay(row, transition)
    return _edit(row, transition)


def _unless(row: QueueRow, verb: str, *states: str) -> Rejected | None:
    if row.state in states:
        return None
    return Rejected(f"Only a {' or '.join(states)} task can be {verb}; this one is {row.state}")


def _resume(row: QueueRow, resume: Resume) -> Change | Rejected:
    if row.version != resume.seen:
        return STALE
    now = resume.now
    if row.pending_deps:  # paused while waiting for its dependencies: it waits again
        return Change(state=WAITING, paused_at=None, estimate_end_at=0)
    # The time it had left when paused; a first run asked to start at once when its
    # executeAt has passed starts now.
    due = now + max(0, row.estimate_execution_at - (row.paused_at or now))
    if row.retry_count == 0 and resume.execute_at is not None and resume.execute_at <= now:
        due = now
    return Change(state=RUNNING, paused_at=None, estimate_end_at=0, estimate_execution_at=due)


def _replay(row: QueueRow, replay: Replay) -> Change | Rejected:
    if row.version != replay.seen:
        return STALE
    change = Change(
        state=RUNNING,
        estimate_execution_at=replay.now + replay.delay,
        estimate_end_at=0,
        paused_at=None,
        retry_count=0,
    )
    if replay.request is None:
        return change
    assert replay.retry_limit is not None
    return replace(change, request=replay.request, retry_limit=replay.retry_limit)


def edit_refusal(row: QueueRow) -> Rejected | None:
    """Why the task cannot be edited now, if it cannot."""
    if row.state not in (RUNNING, PAUSED, WAITING):
        return Rejected(f"A {row.state} task can no longer be changed")
    if row.callback_of is not None:
        return Rejected("A callback's request is the server's report: it cannot be edited")
    if row.in_flight:
        return Rejected(IN_FLIGHT_MESSAGE)
    return None


def _edit(row: QueueRow, edit: Edit) -> Change | Rejected:
    if refused := edit_refusal(row):
        return refused
    if row.version != edit.seen:
        return STALE
    change = Change(
        request=edit.request,
        metadata=edit.metadata,
        retry_limit=edit.retry_limit,
        flow=edit.flow,
        listing=edit.listing,
    )
    if edit.due is None:
        return change
    if row.pending_deps:  # not released yet: its timing counts from its release
        execute_at, delay = edit.release
        return replace(change, estimate_execution_at=execute_at, release_delay=delay)
    # A paused task's remaining time is counted from now, when its timing changed.
    paused_at = edit.now if row.state == PAUSED else KEEP
    return replace(change, estimate_execution_at=edit.due, paused_at=paused_at)


def ending(due: Due, *, succeeded: bool, final: bool) -> str | None:
    """The state an attempt's outcome ends the task `due` in, or None: it is tried again.
    A success ends it; so does a final failure (the target said not to retry) or the last
    retry its limit allows."""
    if succeeded:
        return SUCCESS
    if final or due.retry_count >= due.retry_limit:
        return ERROR
    return None


def expired(due: Due, start: int, max_lateness: int | None) -> bool:
    """Whether an attempt of `due` starting at `start` is too late to be sent (SPEC §18.2):
    counted from the due time, so a flow-control wait counts too."""
    return max_lateness is not None and start - due.estimate_execution_at > max_lateness


def linked(dependencies: Sequence[tuple[str, bool]]) -> tuple[str, int]:
    """The state a task registered with `dependencies` (each one's state and whether the task
    requires it to succeed) starts in, and how many of them it waits for (SPEC §17.2): ERROR
    when one it requires failed or was revoked, WAITING while any is unfinished, else
    RUNNING."""
    if any(required and state in (ERROR, REVOKED) for state, required in dependencies):
        return ERROR, 0
    pending = sum(state in (RUNNING, PAUSED, WAITING) for state, _ in dependencies)
    return (WAITING, pending) if pending else (RUNNING, 0)
