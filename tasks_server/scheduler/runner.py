"""Running one attempt: its start written, its request prepared and sent, its outcome handed on.

"In flight" is a fact in the database: an attempt row is committed before the request is sent
(`started`), up to `StartLead` ahead of the task's time so the request leaves at it, and
closed in the same transaction as the outcome (`Completer`). Memory holds only
the leased tasks (`Holdings`) and the asyncio task of each attempt. A start the store refuses
(the task changed since it was held) sends nothing; an attempt aborted by a change is closed
as ABORTED; either way the task is then settled as it is now, read through an outage like a
write. One cut by stopping is closed as INTERRUPTED with the leases. A failure before the
request was sent is ours, never the target's: the task is set back (`Holdings.set_back`).
Once the request is answered nothing cancels the attempt: its outcome is always written.
A traced task's attempt sends a child of its trace context, and is a span when exporting.
Before its start, a task later than its `maxLateness` is recorded EXPIRED and never sent, and
one whose destination's circuit is open is leased to the circuit (`TaskStore.hold`), no
attempt made; a half-open circuit lets one probe through (SPEC §18).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tasks_server import lifecycle, placeholders, tracing
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.destinations import Circuits, Destination
from tasks_server.executor.options import Attempt
from tasks_server.executor.runner import Outcome, Runner, unfilled
from tasks_server.metrics import Metrics
from tasks_server.models.attempts import AttemptOutcome
from tasks_server.models.queues import QueueRegistration
from tasks_server.scheduler.background import Background
from tasks_server.scheduler.completer import Completer
from tasks_server.scheduler.held import Held, Holder, Holdings
from tasks_server.scheduler.lead import StartLead
from tasks_server.scheduler.slots import Slots
from tasks_server.store.base import Due, StoreUnavailable
from tasks_server.tracing import Span, Tracing

log = logging.getLogger(__package__)  # one log for the scheduler's parts


class AttemptRunner:
    def __init__(
        self,
        holder: Holder,
        holdings: Holdings,
        slots: Slots,
        background: Background,
        completer: Completer,
        runner: Runner,
        gate: ConnectivityGate,
        codec: TaskCodec,
        metrics: Metrics,
        circuits: Circuits,
        *,
        signing_keys: Callable[[str], Awaitable[tuple[bytes, ...]]],
        tracing: Tracing,
        lead: StartLead,
    ) -> None:
        self._holder = holder
        self._holdings = holdings
        self._slots = slots
        self._background = background
        self._completer = completer
        self._runner = runner
        self._gate = gate
        self._codec = codec
        self._metrics = metrics
        self._signing_keys = signing_keys
        self._tracing = tracing
        self._circuits = circuits
        self._lead = lead

    async def attempt(self, held: Held, at: int) -> None:
        """Run one attempt of `held`, which holds a slot (`Slots.started`) until it ends; its
        request leaves at `at` (its time: the start may be written ahead, `StartLead`), or
        now if that is later."""
        row, store, holder = held.row, self._holder.store, self._holder.id
        number: int | None = None
        started: int | None = None  # the start time of the attempt row asked for
        lateness_ms = 0
        span: Span | None = None
        destination: Destination | None = None
        probe = waits = False
        try:
            await self._gate.wait_open()
            at = max(at, self._holder.clock())
            lateness_ms = max(0, at - row.starts_at)
            reg = held.reg or self._codec.open_request(row.request, row.id)
            max_lateness = reg.config.max_lateness
            expired = lifecycle.expired(row, at, max_lateness)
            if not expired:
                destination = self._codec.destination(reg, row.owner_id)
                until, probe = await self._circuit(destination, at)
                if waits := until is not None:
                    assert destination is not None
                    await store.hold(
                        holder=holder, queue_id=row.id, destination_id=destination.id, until=until
                    )
            if not waits:
                started = at
                number = await self._lead.timed(store.started(holder=holder, due=row, now=at))
            if number is not None:
                if expired:
                    outcome, sent = _expired(at - row.estimate_execution_at, max_lateness), None
                else:
                    start = await self._until(at)
                    lateness_ms = max(0, start - row.starts_at)
                    attempt, span = await self._prepare(held, reg, start, lateness_ms)
                    outcome, sent = await self._send(row, reg, attempt)
        except asyncio.CancelledError:
            stopping = self._background.stopping
            cut = AttemptOutcome.INTERRUPTED if stopping else AttemptOutcome.ABORTED
            _unanswered(span, row.id, number, lateness_ms, cut)
            self._slots.ended(row.owner_id)
            held.task = None
            if self._background.stopping:
                raise  # its open attempt is closed as INTERRUPTED with the leases
            log.info("attempt aborted", extra={"action": "attempt_aborted", "queue_id": row.id})
            current = await self._background.persist(
                lambda: store.aborted(
                    holder=holder,
                    queue_id=row.id,
                    now=max(self._holder.clock(), at),  # never before the start it recorded
                    started=started,
                )
            )
            self._holdings.settle(held, current)
            return
        except Exception as exc:
            _unanswered(span, row.id, number, lateness_ms, AttemptOutcome.INTERRUPTED)
            self._slots.ended(row.owner_id)
            held.task = None
            # Nothing was sent (the start could not be written, or the request prepared):
            # ours to fix, never the target's failure.
            if isinstance(exc, StoreUnavailable):
                self._background.outage.failed(exc, action="attempt_set_back")
            else:
                log.exception(
                    "an attempt failed before its request was sent; the task runs again later",
                    extra={"action": "attempt_set_back", "queue_id": row.id},
                )
            self._holdings.set_back(held)
            return
        self._slots.ended(row.owner_id)
        if span is not None:
            attributes = _span_attributes(row.id, number, lateness_ms, outcome.kind)
            attributes["http.response.status_code"] = outcome.attempt_status
            span.end(attributes, error=not outcome.succeeded)
        if waits:  # leased to its destination's circuit until it opens
            held.task = None
            self._holdings.forget(held)
            return
        if number is None:  # changed since it was held: act on what it is now
            held.task = None
            current = await self._background.persist(lambda: store.reload(row.id))
            self._holdings.settle(held, current)
            return
        # From here on nothing cancels the attempt: `changed` leaves it alone and stopping
        # lets it finish, so a pause cannot cut the outcome write.
        held.recording = True
        await self._completer.record(
            held, reg, outcome, number, lateness_ms, sent, destination=destination, probe=probe
        )

    async def _until(self, at: int) -> int:
        """Wait until the wall clock reaches `at`; the clock then. Never earlier: a timer may
        fire a little ahead, and the clock counts whole milliseconds."""
        while (now := self._holder.clock()) < at:  # noqa: ASYNC110 (a clock, not an event)
            await asyncio.sleep((at - now) / 1000)
        return now

    async def _circuit(
        self, destination: Destination | None, start: int
    ) -> tuple[int | None, bool]:
        """Until when the task waits for its destination's circuit (None: it goes now), and
        whether it goes as the one probe of a half-open circuit."""
        if destination is None:
            return None, False
        circuits, store = self._circuits, self._holder.store
        open_until = circuits.open_until(destination.id)
        if open_until is None and circuits.suspect(destination.id):
            open_until = await store.circuit(destination.id) or None
        if open_until is None:
            return None, False
        if open_until > start:
            return open_until, False
        until = start + self._holder.lease_ms
        wait = await store.take_probe(destination.id, now=start, until=until)
        return wait, wait is None

    async def _send(
        self, row: Due, reg: QueueRegistration, attempt: Attempt
    ) -> tuple[Outcome, QueueRegistration | None]:
        """Send the request, its placeholders filled from its dependencies' responses (the
        request filled is returned with the outcome); one that cannot be filled fails the
        attempt, and nothing is sent (SPEC §17.3)."""
        if not (reg.depends_on and placeholders.used(reg)):
            return await self._runner.run(reg, attempt), None
        found = await self._holder.store.dependency_results(row.id)
        dependencies = {
            result.name: placeholders.Dependency(
                result.status_code,
                None
                if result.response is None
                else self._codec.open(result.response, result.depends_on, "response"),
            )
            for result in found
        }
        try:
            filled = placeholders.fill(reg, dependencies)
        except placeholders.Unfilled as exc:
            return unfilled(str(exc)), None
        return await self._runner.run(filled, attempt), filled

    async def _prepare(
        self, held: Held, reg: QueueRegistration, start: int, lateness_ms: int
    ) -> tuple[Attempt, Span | None]:
        """The attempt to send `reg` as, with its signing keys and its trace context (with
        its span, when exporting)."""
        row = held.row
        signing_secrets = await self._signing_keys(row.owner_id)
        self._metrics.lateness.observe(lateness_ms / 1000)
        if row.flow_key is not None:
            self._metrics.flow_wait.observe(max(0, start - row.estimate_execution_at) / 1000)
        traceparent = span = None
        if (kept := reg.traceparent) is not None:
            span = self._tracing.attempt(kept)
            traceparent = tracing.child(kept) if span is None else span.traceparent
        attempt = Attempt(
            queue_id=row.id,
            owner_id=row.owner_id,
            retry_count=row.retry_count,
            retry_limit=row.retry_limit,
            due=row.estimate_execution_at,
            timeout_ms=_timeout_ms(reg, row, start),
            signing_secrets=signing_secrets,
            sent_at_s=start // 1000,
            traceparent=traceparent,
        )
        return attempt, span


def _expired(late_ms: int, max_lateness: int | None) -> Outcome:
    """An attempt recorded but never sent: too late for its `maxLateness`; final, so the task
    ends ERROR and its failureCallback fires."""
    message = f"not started within maxLateness ({max_lateness} ms): {late_ms} ms late"
    return Outcome(0, message.encode(), False, 0.0, AttemptOutcome.EXPIRED, message, final=True)


def _unanswered(
    span: Span | None, queue_id: str, number: int | None, lateness_ms: int, cut: AttemptOutcome
) -> None:
    """End the span of an attempt cut before its answer (aborted, stopped, or never sent)."""
    if span is not None:
        span.end(_span_attributes(queue_id, number, lateness_ms, cut), error=True)


def _span_attributes(
    queue_id: str, number: int | None, lateness_ms: int, outcome: AttemptOutcome
) -> dict[str, str | int]:
    """An attempt span's attributes; never the URL, whose query and userinfo hold secrets."""
    return {
        "tasks.task_id": queue_id,
        "tasks.attempt": number or 0,
        "tasks.outcome": outcome.value,
        "tasks.lateness_ms": lateness_ms,
    }


def _timeout_ms(reg: QueueRegistration, row: Due, start: int) -> int:
    """`timeoutAt` is the first attempt's absolute deadline; retries use `timeout`."""
    if row.retry_count == 0 and reg.config.timeout_at is not None:
        return reg.config.timeout_at - start
    return reg.config.timeout
