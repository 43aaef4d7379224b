"""The lifecycle's decisions (SPEC §16.1): every state × transition pair, without a store."""

from __future__ import annotations

import dataclasses

import pytest

from tasks_server.lifecycle import (
    IN_FLIGHT_MESSAGE,
    KEEP,
    STALE,
    Change,
    Edit,
    Execute,
    Pause,
    Replay,
    Resume,
    Revoke,
    Transition,
    decide,
    ending,
    expired,
    linked,
)
from tasks_server.store.base import Due, Flow, Listing, QueueRow, Rejected

NOW = 1_000_000
STATES = ("RUNNING", "PAUSED", "SUCCESS", "ERROR", "REVOKED", "WAITING")
ROW = QueueRow(
    id="01TASK",
    owner_id="01OWNER",
    state="RUNNING",
    created_at=NOW - 10_000,
    status_code=0,
    estimate_execution_at=NOW + 5_000,
    estimate_end_at=0,
    paused_at=None,
    retry_count=0,
    retry_limit=2,
    version=7,
    request=b"sealed",
    metadata=None,
    response=None,
    attempts=0,
    schedule_id=None,
    in_flight=False,
)
FLOW = Flow(key="digest", parallelism=1, rate=None)


def row(state: str, **changes: object) -> QueueRow:
    return dataclasses.replace(ROW, state=state, **changes)  # type: ignore[arg-type]


def only(*states: str, verb: str, state: str) -> Rejected:
    return Rejected(f"Only a {' or '.join(states)} task can be {verb}; this one is {state}")


EDIT = Edit(NOW, 7, b"new", None, 3, FLOW, None, Listing(labels='{"k":"v"}'))
TRANSITIONS: dict[str, Transition] = {
    "pause": Pause(NOW),
    "resume": Resume(NOW, 7),
    "revoke": Revoke(NOW),
    "execute": Execute(NOW),
    "replay": Replay(NOW, 7),
    "edit": EDIT,
}
ALLOWED = {
    "pause": {"RUNNING", "WAITING"},
    "resume": {"PAUSED"},
    "revoke": {"RUNNING", "PAUSED", "WAITING"},
    "execute": {"RUNNING"},
    "replay": {"SUCCESS", "ERROR", "REVOKED"},
    "edit": {"RUNNING", "PAUSED", "WAITING"},
}
VERBS = {"pause": "paused", "resume": "resumed", "revoke": "revoked", "execute": "executed"}
VERBS["replay"] = "replayed"


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_every_state_and_transition(name: str, state: str) -> None:
    paused_at = NOW - 1_000 if state == "PAUSED" else None
    decided = decide(row(state, paused_at=paused_at), TRANSITIONS[name])
    if state not in ALLOWED[name]:
        if name == "edit":
            assert decided == Rejected(f"A {state} task can no longer be changed")
        else:
            states = [s for s in STATES if s in ALLOWED[name]]
            assert decided == only(*states, verb=VERBS[name], state=state)
        return
    expected = {
        "pause": Change(state="PAUSED", paused_at=NOW, estimate_end_at=NOW),
        "resume": Change(
            state="RUNNING", paused_at=None, estimate_end_at=0, estimate_execution_at=NOW + 6_000
        ),
        "revoke": Change(state="REVOKED", estimate_end_at=NOW, paused_at=None),
        "execute": Change(estimate_execution_at=NOW),
        "replay": Change(
            state="RUNNING",
            estimate_execution_at=NOW,
            estimate_end_at=0,
            paused_at=None,
            retry_count=0,
        ),
        "edit": Change(
            request=b"new", metadata=None, retry_limit=3, flow=FLOW, listing=EDIT.listing
        ),
    }[name]
    assert decided == expected


@pytest.mark.parametrize(
    "transition",
    [Resume(NOW, 6), Replay(NOW, 6), dataclasses.replace(EDIT, seen=6)],
)
def test_a_transition_built_from_an_older_version_is_stale(transition: Transition) -> None:
    state = {Resume: "PAUSED", Replay: "ERROR", Edit: "RUNNING"}[type(transition)]
    assert decide(row(state, paused_at=NOW), transition) is STALE


def test_resume_starts_at_once_when_execute_at_passed_on_a_first_run() -> None:
    paused = row("PAUSED", paused_at=NOW - 1_000)
    assert decide(paused, Resume(NOW, 7, execute_at=NOW - 1)) == Change(
        state="RUNNING", paused_at=None, estimate_end_at=0, estimate_execution_at=NOW
    )
    # Not on a retry, and not before executeAt: the remaining time counts.
    retried = dataclasses.replace(paused, retry_count=1)
    for resumed in (
        decide(retried, Resume(NOW, 7, execute_at=NOW - 1)),
        decide(paused, Resume(NOW, 7, execute_at=NOW + 1)),
    ):
        assert isinstance(resumed, Change) and resumed.estimate_execution_at == NOW + 6_000


def test_execute_refuses_a_task_in_flight() -> None:
    assert decide(row("RUNNING", in_flight=True), Execute(NOW)) == Rejected(IN_FLIGHT_MESSAGE)


def test_replay_with_a_delay_and_a_resealed_request() -> None:
    decided = decide(row("SUCCESS"), Replay(NOW, 7, delay=500, request=b"new", retry_limit=1))
    assert isinstance(decided, Change)
    assert (decided.estimate_execution_at, decided.request, decided.retry_limit) == (
        NOW + 500,
        b"new",
        1,
    )


def test_edit_refuses_callbacks_and_tasks_in_flight() -> None:
    assert decide(row("RUNNING", callback_of="01PARENT"), EDIT) == Rejected(
        "A callback's request is the server's report: it cannot be edited"
    )
    assert decide(row("PAUSED", in_flight=True), EDIT) == Rejected(IN_FLIGHT_MESSAGE)


@pytest.mark.parametrize(("state", "paused_at"), [("RUNNING", KEEP), ("PAUSED", NOW)])
def test_an_edit_of_its_timing_sets_the_due_time(state: str, paused_at: object) -> None:
    decided = decide(row(state, paused_at=NOW - 5), dataclasses.replace(EDIT, due=NOW + 9))
    assert isinstance(decided, Change)
    assert (decided.estimate_execution_at, decided.paused_at) == (NOW + 9, paused_at)


def test_a_change_names_only_what_it_sets() -> None:
    assert Change(state="PAUSED", paused_at=None).assigned() == {
        "state": "PAUSED",
        "paused_at": None,
    }
    assert repr(KEEP) == "KEEP"


@pytest.mark.parametrize(
    ("succeeded", "final", "retries", "ends"),
    [
        (True, False, 0, "SUCCESS"),
        (True, False, 3, "SUCCESS"),
        (False, True, 0, "ERROR"),  # the target said not to retry
        (False, False, 3, "ERROR"),  # its last retry
        (False, False, 2, None),  # tried again
    ],
)
def test_an_outcome_ends_the_task_or_tries_again(
    succeeded: bool, final: bool, retries: int, ends: str | None
) -> None:
    due = dataclasses.replace(ROW, retry_count=retries, retry_limit=3).due
    assert ending(due, succeeded=succeeded, final=final) == ends


def test_expired_counts_lateness_from_the_due_time() -> None:
    due = Due("q", "o", 1_000, 0, 0, 1, b"", start_at=5_000)
    assert not expired(due, 999_999, None)
    assert not expired(due, 3_000, 2_000)  # exactly the limit late: still sent
    assert expired(due, 3_001, 2_000)  # a flow-control start later counts too


def test_a_task_paused_while_waiting_waits_again_when_resumed() -> None:
    decided = decide(row("PAUSED", paused_at=NOW - 1_000, pending_deps=2), Resume(NOW, 7))
    assert decided == Change(state="WAITING", paused_at=None, estimate_end_at=0)


@pytest.mark.parametrize(
    ("dependencies", "expected"),
    [
        ([("RUNNING", True), ("SUCCESS", True)], ("WAITING", 1)),
        ([("WAITING", True), ("PAUSED", False)], ("WAITING", 2)),
        ([("SUCCESS", True), ("ERROR", False), ("REVOKED", False)], ("RUNNING", 0)),
        ([("RUNNING", True), ("ERROR", True)], ("ERROR", 0)),
        ([("REVOKED", True)], ("ERROR", 0)),
    ],
)
def test_a_linked_task_starts_as_its_dependencies_say(
    dependencies: list[tuple[str, bool]], expected: tuple[str, int]
) -> None:
    assert linked(dependencies) == expected


def test_an_edit_of_a_waiting_tasks_timing_counts_from_its_release() -> None:
    edit = dataclasses.replace(EDIT, due=NOW + 500, release=(0, 500))
    decided = decide(row("WAITING", pending_deps=1), edit)
    assert isinstance(decided, Change)
    assert (decided.estimate_execution_at, decided.release_delay) == (0, 500)
