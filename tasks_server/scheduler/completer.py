"""Completing: an attempt's outcome written, the retry or the end it means, its callback.

The outcome is recorded for the version the attempt ran with, in one transaction with the
attempt row it closes, the task's next state and the callback task it queues: a change made
meanwhile discards it, and the task is then settled as it is now. A write that fails is
retried through the outage (`Background.persist`): an outcome is recorded as soon as the
database answers, so the target is not sent it again. Only an outcome write that keeps failing
while the database works (not StoreUnavailable) gives way, after the quick retries, to
releasing the task, which then runs again. A retry due soon, a callback queued, or a flow
key's turn for its next task asks the producer to claim at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, replace
from typing import Any

from ulid import ULID

from tasks_server import callbacks, destinations, lifecycle
from tasks_server.codec import TaskCodec
from tasks_server.destinations import Circuits, Destination
from tasks_server.executor.runner import Outcome
from tasks_server.metrics import Metrics
from tasks_server.models.queues import QueueRegistration
from tasks_server.retry import RetryPolicy, retry_after_ms
from tasks_server.scheduler.background import Background
from tasks_server.scheduler.held import WINDOW_MS, Held, Holder, Holdings, Wakeup
from tasks_server.store.base import (
    CircuitNote,
    CircuitPolicy,
    Due,
    NewTask,
    QueueRow,
    Recorded,
    Result,
)

log = logging.getLogger(__package__)  # one log for the scheduler's parts

Callback = tuple[callbacks.Kind, NewTask]
_CALLBACKS_PER_SWEEP = 100


@dataclass(frozen=True, slots=True)
class _Ending:
    """How a task ended, as its callback reports it."""

    state: str
    status_code: int
    attempts: int
    response: bytes | None


class Completer:
    def __init__(
        self,
        holder: Holder,
        holdings: Holdings,
        wakeup: Wakeup,
        background: Background,
        codec: TaskCodec,
        metrics: Metrics,
        *,
        max_attempts_kept: int,
        circuits: Circuits,
        policy: CircuitPolicy,
        rng: random.Random,
    ) -> None:
        self._holder = holder
        self._holdings = holdings
        self._wakeup = wakeup
        self._background = background
        self._codec = codec
        self._metrics = metrics
        self._attempts_kept = max_attempts_kept
        self._rng = rng
        self._circuits = circuits
        self._policy = policy
        self._sweep: asyncio.Task[None] | None = None

    async def record(
        self,
        held: Held,
        reg: QueueRegistration,
        outcome: Outcome,
        number: int,
        lateness_ms: int,
        sent: QueueRegistration | None = None,
        *,
        destination: Destination | None = None,
        probe: bool = False,
    ) -> None:
        """Write the outcome of attempt `number` of `held` (its request was answered, or
        failed in transport; `sent`: the request as its placeholders were filled), and act on
        what it changed; `destination`'s circuit counts it (`probe`: it was the one attempt
        of a half-open circuit)."""
        row = held.row
        trace = reg.config.trace_response_data
        self._metrics.count_attempt(outcome=outcome.kind.value, status_code=outcome.status_code)
        self._metrics.attempt_duration.observe(outcome.duration_ms / 1000)
        # A task with dependents keeps its response for their placeholders (SPEC §17.3).
        result = self._result(row, reg, outcome, number, trace or bool(row.has_dependents))
        if sent is not None:
            filled = sent.http_request.model_dump(
                mode="json", by_alias=True, exclude_none=True, include={"url", "headers", "data"}
            )
            sealed = self._codec.seal_json(filled, row.id, f"attempt-{number}-sent")
            result = replace(result, sent=sealed)
        circuit = self._circuit(row, destination, probe, outcome)
        store, holder = self._holder.store, self._holder.id

        async def write() -> tuple[Callback | None, Recorded]:
            callback = await self._callback(row, reg, result, outcome.body if trace else None)
            applied = await store.record(
                holder=holder,
                due=row,
                result=result,
                keep=self._attempts_kept,
                callback=None if callback is None else callback[1],
                circuit=circuit,
            )
            return callback, applied

        try:
            written = await self._background.persist(
                write, instead=lambda: self._holdings.abandon(row.id)
            )
        except Exception:  # stopping: the lease goes with the others, or expires
            log.exception("an outcome could not be recorded", extra={"queue_id": row.id})
            written = None
        if written is None:
            log.warning(
                "an outcome could not be recorded; the task was released to run again",
                extra={"action": "outcome_lost", "queue_id": row.id},
            )
            self._holdings.forget(held)
            return
        callback, recorded = written
        applied = bool(recorded)
        self._holdings.clear_setback(row.id)
        event = "retry_scheduled" if result.state is None else result.state.lower()
        event = event if applied else "outcome_discarded"
        _log_outcome(row, number, outcome, event, result.retry_at, lateness_ms)
        if applied:
            self._applied(held, reg, result, callback)
            if recorded is Recorded.SETTLED:
                self.settled()
            return
        try:  # changed while in flight: act on what it is now (still recording: uncancelled)
            current = await store.reload(row.id)
        finally:
            held.recording = False
        self._holdings.settle(held, current)

    def _applied(
        self, held: Held, reg: QueueRegistration, result: Result, callback: Callback | None
    ) -> None:
        """The outcome applied: the task is no longer held here, unless claimed again."""
        # A retry due soon, or a flow key's turn for the next of its tasks: claim now.
        retry_soon = result.state is None and result.retry_at <= result.finished_at + WINDOW_MS
        if retry_soon or held.row.flow_key is not None:
            self._wakeup.claim()
        if result.state is not None:
            self._count_callbacks(held.row, reg, result.state, callback)
        self._holdings.forget(held)
        if held.claimed is not None:
            self._holdings.hold(held.claimed, None)

    def _result(
        self, row: Due, reg: QueueRegistration, outcome: Outcome, number: int, trace: bool
    ) -> Result:
        """What the outcome write records: the attempt, and the task's end or next retry."""
        now = self._holder.clock()
        response = self._codec.seal(outcome.body, row.id, "response") if trace else None
        retry_at = 0
        state = lifecycle.ending(row, succeeded=outcome.succeeded, final=outcome.final)
        if state is None:
            waited = retry_after_ms(outcome.retry_after, now)
            retry_at = _next_retry_at(reg, row.retry_count + 1, now, waited, self._rng)
        error = None
        if outcome.error is not None:
            error = self._codec.seal(outcome.error.encode(), row.id, f"attempt-{number}-error")
        return Result(
            attempt=number,
            outcome=outcome.kind.value,
            status_code=outcome.status_code,
            error=error,
            response=response,
            finished_at=now,
            state=state,
            retry_at=retry_at,
            attempt_status=outcome.answered,
        )

    def _circuit(
        self, row: Due, destination: Destination | None, probe: bool, outcome: Outcome
    ) -> CircuitNote | None:
        """What the outcome tells its destination's circuit, if anything."""
        if destination is None or (failed := destinations.failed(outcome)) is None:
            return None
        address = error = None
        if not failed:
            self._circuits.answered(destination.id)
        else:
            # Before the write: an attempt starting once it may have opened the circuit
            # reads the circuit rather than this process's view of it.
            self._circuits.failed(destination.id)
            seal = self._codec.seal
            address = seal(destination.address.encode(), destination.id, "address")
            why = outcome.error or f"HTTP {outcome.status_code}"
            error = seal(why.encode(), destination.id, "last_error")
        return CircuitNote(
            destination.id, row.owner_id, address or b"", failed, error, probe, self._policy
        )

    async def _callback(
        self, row: Due, reg: QueueRegistration, result: Result, response: bytes | None
    ) -> Callback | None:
        """The callback task an ending outcome stores with it, when the task has one."""
        if result.state is None or callbacks.wanted(reg.config, result.state) is None:
            return None
        parent = await self._holder.store.get(row.owner_id, row.id)  # metadata is not in `Due`
        if parent is None:
            return None  # deleted meanwhile: the outcome does not apply either
        ending = _Ending(result.state, result.status_code, result.attempt, response)
        return self._callback_of(parent, reg, ending, result.finished_at)

    def _callback_of(
        self, parent: QueueRow, reg: QueueRegistration, ending: _Ending, now: int
    ) -> Callback | None:
        found = callbacks.wanted(reg.config, ending.state)
        if found is None:
            return None
        metadata = None
        if parent.metadata is not None:
            metadata = self._codec.open_json(parent.metadata, parent.id, "metadata")
        kind, callback = found
        finished = callbacks.Finished(
            queue_id=parent.id,
            state=ending.state,
            status_code=ending.status_code,
            attempts=ending.attempts,
            response=ending.response,
            metadata=metadata,
            schedule_id=parent.schedule_id,
        )
        task = callbacks.task(
            self._codec,
            callback,
            kind,
            finished,
            queue_id=str(ULID()),
            now=now,
            ip_version=reg.config.ip_version,
            traceparent=reg.traceparent,
        )
        return kind, task

    def settled(self) -> None:
        """A task with dependents ended: those it released may be due now, and those it
        failed may have callbacks to queue."""
        self._wakeup.claim()
        if self._sweep is None or self._sweep.done():  # else that sweep is still to read them
            self._sweep = self._background.spawn(
                self.queue_dependency_callbacks(), "dependency-callbacks"
            )

    async def queue_dependency_callbacks(self) -> None:
        """Queue the failureCallbacks of tasks a failed dependency ended (SPEC §17.2): they
        ended in a transaction that opens no request, so their callbacks come next, each once
        whichever process sweeps (`TaskStore.queue_callbacks`)."""
        store = self._holder.store
        while due := await store.callbacks_due(_CALLBACKS_PER_SWEEP):
            now = self._holder.clock()
            made = []
            for row in due:
                reg = self._codec.open_request(row.request, row.id)
                ending = _Ending(row.state, row.status_code, row.attempts, None)
                callback = self._callback_of(row, reg, ending, now)
                made.append((row, None if callback is None else callback[1]))
            queued = await store.queue_callbacks(made)
            if queued:
                self._metrics.callbacks_queued.labels(kind="failure").inc(queued)
                self._wakeup.claim()
            if len(due) < _CALLBACKS_PER_SWEEP:
                return

    def _count_callbacks(
        self, row: Due, reg: QueueRegistration, state: str, callback: Callback | None
    ) -> None:
        """Metrics and logs of an applied ending outcome: a callback stored with it, or the
        end of a callback's own task; a stored callback is due now, so claim it."""
        if callback is not None:
            kind, task = callback
            self._metrics.callbacks_queued.labels(kind=kind).inc()
            log.info(
                "callback queued",
                extra={
                    "action": "callback_queued",
                    "queue_id": row.id,
                    "callback_queue_id": task.queue_id,
                    "kind": kind,
                },
            )
            self._wakeup.claim()
        if callbacks.kind_of(reg) is not None:
            self._metrics.callbacks_finished.labels(outcome=state).inc()


def _log_outcome(
    row: Due, number: int, outcome: Outcome, event: str, retry_at: int, lateness_ms: int
) -> None:
    """One line per attempt, when it ends: a line at its start would double the logging
    cost of every attempt (about 40 µs each) for what the attempts listing shows."""
    level = logging.INFO if outcome.succeeded else logging.WARNING
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "action": event,
        "queue_id": row.id,
        "attempt": number,
        "lateness_ms": lateness_ms,
        "outcome": outcome.kind.value,
        "status_code": outcome.status_code,
        "duration_ms": round(outcome.duration_ms, 1),
    }
    if outcome.error is not None:
        fields["error"] = outcome.error
    if retry_at:
        fields["retry_at"] = retry_at
    log.log(level, "attempt finished", extra=fields)


def _next_retry_at(
    reg: QueueRegistration, n: int, now: int, retry_after: int | None, rng: random.Random
) -> int:
    config = reg.config
    if n == 1 and config.retry_at is not None:
        return max(config.retry_at, now + (retry_after or 0))
    return now + RetryPolicy.from_config(config).wait_ms(n, retry_after_ms=retry_after, rng=rng)
