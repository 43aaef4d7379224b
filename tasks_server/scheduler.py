"""Turns due rows into attempts and attempts' outcomes back into rows.

The database schedules; memory only caches. Every few hundred milliseconds the scheduler
leases (in one SQL statement) the RUNNING tasks due within the next `WINDOW_MS` that no live
process holds, keeps them in a heap, and sleeps exactly until the earliest. A lease passes to
another process only once expired, so a task never runs twice at once, also with several
processes on one database. A crash loses nothing: leases are cleared when a lone server
starts (or expire in a cluster), and every RUNNING task is claimed again at its own time.

Client changes (pause, resume, revoke, edit, execute, delete) bump the row's `version`. The
API tells the local scheduler at once; in cluster mode the holder also compares its leases'
versions every `RECONCILE_MS`. An attempt whose version changed is aborted, and an outcome is
only recorded for the version it was run with.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.executor.options import Attempt
from tasks_server.executor.runner import Outcome, Runner
from tasks_server.metrics import Metrics
from tasks_server.models.queues import QueueRegistration, QueueState
from tasks_server.retry import RetryPolicy
from tasks_server.store import queues
from tasks_server.store.db import Database
from tasks_server.store.queues import QueueRow
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

WINDOW_MS = 2_000  # lease tasks due this far ahead
POLL_MS = 500  # look for tasks that came within the window (other processes, time passing)
LEASE_MS = 60_000  # a lease outlives its holder by at most this long
RENEW_MS = 10_000
RECONCILE_MS = 250  # cluster mode: how soon a change made in another process reaches its holder
CLAIM_BATCH = 2_000
MAX_HELD = 20_000  # tasks leased and waiting in memory
MAX_IN_FLIGHT = 1_000  # concurrent attempts; the rest wait their turn in the heap
FIRE_BATCH = 100  # attempts started per loop turn: the first leave before the last are prepared

RUNNING = QueueState.RUNNING.value


@dataclass(slots=True)
class _Held:
    """A task this process holds the lease of, waiting in the heap or in flight."""

    row: QueueRow
    reg: QueueRegistration | None = None
    task: asyncio.Task[None] | None = None
    recording: bool = False


@dataclass(slots=True)
class _Tasks:
    """Background tasks with references kept and failures logged."""

    running: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


class Scheduler:
    def __init__(
        self,
        db: Database,
        codec: TaskCodec,
        runner: Runner,
        gate: ConnectivityGate,
        metrics: Metrics,
        *,
        cluster: bool = False,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.lease_owner = str(ULID())
        self._db = db
        self._codec = codec
        self._runner = runner
        self._gate = gate
        self._metrics = metrics
        self._cluster = cluster
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._heap: list[tuple[int, int, str, int]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._claim_wanted = True
        self._stopping = False
        self._tasks = _Tasks()
        self._loops: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._run(), name="scheduler"),
            asyncio.create_task(self._housekeeping(), name="scheduler-housekeeping"),
        ]
        for task in self._loops:
            task.add_done_callback(self._loop_died)

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, let attempts finish up to `grace_s`, abort the rest, free leases."""
        self._stopping = True
        self._wake.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        in_flight = [held.task for held in self._held.values() if held.task is not None]
        if in_flight:
            log.info("waiting for %d attempts in flight", len(in_flight))
            _, pending = await asyncio.wait(in_flight, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self._tasks.running, return_exceptions=True)
        await queues.release_leases_of(self._db, self.lease_owner)
        self._held.clear()

    def _loop_died(self, task: asyncio.Task[None]) -> None:
        if not self._stopping and not task.cancelled():
            log.critical("%s stopped: %r; exiting", task.get_name(), task.exception())
            raise SystemExit(1)

    # --- what the API tells the scheduler -------------------------------------------------

    def lease_for(self, due: int) -> tuple[str, int] | None:
        """A lease for a task being registered, when it is due soon enough to hold now."""
        now = self._clock()
        if due <= now + WINDOW_MS and len(self._held) < MAX_HELD and not self._stopping:
            return self.lease_owner, now + LEASE_MS
        return None

    def adopt(self, row: QueueRow, reg: QueueRegistration) -> None:
        """Hold a task registered with a lease from `lease_for`."""
        self._hold(row, reg)

    def is_in_flight(self, queue_id: str) -> bool:
        held = self._held.get(queue_id)
        return held is not None and held.task is not None

    def changed(self, queue_id: str, row: QueueRow | None) -> None:
        """A client changed (or deleted, `row` None) a task; act on it if held here."""
        held = self._held.get(queue_id)
        if held is None:
            if (
                row is not None
                and row.state == RUNNING
                and row.estimate_execution_at <= (self._clock() + WINDOW_MS)
            ):
                self._claim_wanted = True
                self._wake.set()
            return
        if held.recording:
            return  # the outcome being written carries the old version and will not apply
        if held.task is not None:
            if row is None or row.version != held.row.version:
                held.task.cancel()
            return
        self._settle(queue_id, row)

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        next_poll = 0
        # A claim waits on the writer, behind other writes: due tasks keep firing meanwhile.
        claiming: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                now = self._clock()
                claim_running = claiming is not None and not claiming.done()
                if not claim_running and (self._claim_wanted or now >= next_poll):
                    self._claim_wanted = False
                    next_poll = now + POLL_MS
                    claiming = asyncio.create_task(self._claim_logged(now), name="scheduler-claim")
                    claim_running = True
                more = self._fire_due()
                self._wake.clear()
                if more:
                    await asyncio.sleep(0)  # let the attempts just started reach the network
                    continue
                if self._claim_wanted and not claim_running:
                    continue
                wake_at = None if claim_running else next_poll  # a claim ending wakes us
                if self._heap and self._in_flight < MAX_IN_FLIGHT:
                    due = self._heap[0][0]
                    wake_at = due if wake_at is None else min(wake_at, due)
                delay = None if wake_at is None else wake_at - self._clock()
                if delay is None or delay > 0:
                    # Not wait_for: on 3.11 it can swallow a cancel that lands as the wake-up
                    # completes, and then stop() would wait for this loop forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(None if delay is None else delay / 1000):
                            await self._wake.wait()
        finally:
            if claiming is not None and not claiming.done():
                claiming.cancel()  # its leases are freed with the others when stopping
                with contextlib.suppress(asyncio.CancelledError):
                    await claiming

    async def _claim_logged(self, now: int) -> None:
        try:
            await self._claim(now)
        except Exception:
            log.exception("claiming due tasks failed", extra={"action": "claim"})
        finally:
            self._wake.set()

    async def _claim(self, now: int) -> None:
        room = min(CLAIM_BATCH, MAX_HELD - len(self._held))
        if room <= 0:
            return
        rows = await queues.claim(
            self._db,
            lease_owner=self.lease_owner,
            now=now,
            horizon=now + WINDOW_MS,
            lease_ms=LEASE_MS,
            limit=room,
        )
        for row in rows:
            self._hold(row, None)
        if len(rows) == room:
            self._claim_wanted = True  # more may be due: keep draining

    def _fire_due(self) -> bool:
        """Start up to FIRE_BATCH due attempts; True when more are due and could start."""
        now = self._clock()
        fired = 0
        while self._heap and self._heap[0][0] <= now and self._in_flight < MAX_IN_FLIGHT:
            if fired == FIRE_BATCH:
                return True
            _, _, queue_id, version = heapq.heappop(self._heap)
            held = self._held.get(queue_id)
            if held is None or held.row.version != version or held.task is not None:
                continue  # superseded entry
            self._count_in_flight(+1)
            fired += 1
            held.task = self._tasks.spawn(self._attempt(held), f"attempt-{queue_id}")
        return False

    def _count_in_flight(self, change: int) -> None:
        self._in_flight += change
        self._metrics.in_flight.set(self._in_flight)

    def _hold(self, row: QueueRow, reg: QueueRegistration | None) -> None:
        self._held[row.id] = _Held(row, reg)
        heapq.heappush(
            self._heap, (row.estimate_execution_at, next(self._seq), row.id, row.version)
        )
        self._wake.set()

    def _settle(self, queue_id: str, row: QueueRow | None) -> None:
        """Hold `row` again if it is due soon, else drop it and free its lease."""
        if (
            row is not None
            and row.state == RUNNING
            and row.estimate_execution_at <= (self._clock() + WINDOW_MS)
        ):
            self._hold(row, None)
            return
        self._held.pop(queue_id, None)
        if row is not None:
            self._tasks.spawn(
                queues.release_lease(self._db, queue_id, self.lease_owner), "release-lease"
            )

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, held: _Held) -> None:
        row = held.row
        try:
            reg = held.reg or self._codec.open_request(row.request, row.id)
            await self._gate.wait_open()
            start = self._clock()
            lateness_ms = max(0, start - row.estimate_execution_at)
            self._metrics.lateness.observe(lateness_ms / 1000)
            log.info(
                "attempt started",
                extra={
                    "action": "attempt_started",
                    "queue_id": row.id,
                    "attempt": row.retry_count + 1,
                    "lateness_ms": lateness_ms,
                },
            )
            attempt = Attempt(
                queue_id=row.id,
                owner_id=row.owner_id,
                retry_count=row.retry_count,
                retry_limit=row.retry_limit,
                due=row.estimate_execution_at,
                timeout_ms=_timeout_ms(reg, row, start),
                signing_secrets=(),
                sent_at_s=start // 1000,
            )
            outcome = await self._runner.run(reg, attempt)
        except asyncio.CancelledError:
            self._count_in_flight(-1)
            held.task = None
            if self._stopping:
                raise
            log.info("attempt aborted", extra={"action": "attempt_aborted", "queue_id": row.id})
            self._settle(row.id, await queues.reload(self._db, row.id))
            return
        except Exception:
            self._count_in_flight(-1)
            held.task = None
            log.exception("attempt failed unexpectedly", extra={"queue_id": row.id})
            outcome = Outcome(500, b"internal error while preparing the request", False, 0.0)
            reg = None
        else:
            self._count_in_flight(-1)
        self._wake.set()  # a slot is free
        held.recording = True
        await asyncio.shield(self._record(held, reg, outcome))

    async def _record(self, held: _Held, reg: QueueRegistration | None, outcome: Outcome) -> None:
        row = held.row
        now = self._clock()
        trace = reg is None or reg.config.trace_response_data
        response = self._codec.seal(outcome.body, row.id, "response") if trace else None
        self._metrics.count_attempt(succeeded=outcome.succeeded, status_code=outcome.status_code)
        self._metrics.attempt_duration.observe(outcome.duration_ms / 1000)
        if outcome.succeeded or row.retry_count >= row.retry_limit or reg is None:
            state = QueueState.SUCCESS if outcome.succeeded else QueueState.ERROR
            applied = await queues.finish(
                self._db,
                queue_id=row.id,
                lease_owner=self.lease_owner,
                version=row.version,
                state=state.value,
                status_code=outcome.status_code,
                response=response,
                ended_at=now,
            )
            event = state.value.lower()
        else:
            due = _next_retry_at(reg, row.retry_count + 1, now)
            applied = await queues.retry_later(
                self._db,
                queue_id=row.id,
                lease_owner=self.lease_owner,
                version=row.version,
                status_code=outcome.status_code,
                response=response,
                due=due,
            )
            event = "retry_scheduled"
            if applied and due <= now + WINDOW_MS:
                self._claim_wanted = True
                self._wake.set()
        fields = {
            "action": event if applied else "outcome_discarded",
            "queue_id": row.id,
            "status_code": outcome.status_code,
            "duration_ms": round(outcome.duration_ms, 1),
        }
        if event == "retry_scheduled":
            fields["retry_at"] = due
        log.info("attempt finished", extra=fields)
        if applied:
            self._held.pop(row.id, None)
        else:  # changed while in flight: act on what it is now
            held.recording = False
            self._settle(row.id, await queues.reload(self._db, row.id))

    # --- housekeeping ---------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        interval = RECONCILE_MS if self._cluster else RENEW_MS
        last_renewal = self._clock()
        while True:
            await asyncio.sleep(interval / 1000)
            try:
                if self._cluster:
                    await self._reconcile()
                if self._clock() - last_renewal >= RENEW_MS:
                    last_renewal = self._clock()
                    await queues.renew_leases(self._db, self.lease_owner, last_renewal + LEASE_MS)
            except Exception:
                log.exception("scheduler housekeeping failed", extra={"action": "housekeeping"})

    async def _reconcile(self) -> None:
        """Catch up with changes made by other processes to the tasks held here."""
        if not self._held:
            return
        current = await queues.leased_versions(self._db, self.lease_owner)
        for queue_id, held in list(self._held.items()):
            version = current.get(queue_id)
            if held.recording or (version is not None and version[1] == held.row.version):
                continue
            self.changed(queue_id, await queues.reload(self._db, queue_id))


def _timeout_ms(reg: QueueRegistration, row: QueueRow, start: int) -> int:
    """`timeoutAt` is the first attempt's absolute deadline; retries use `timeout`."""
    if row.retry_count == 0 and reg.config.timeout_at is not None:
        return reg.config.timeout_at - start
    return reg.config.timeout


def _next_retry_at(reg: QueueRegistration, n: int, now: int) -> int:
    config = reg.config
    if n == 1 and config.retry_at is not None:
        return max(config.retry_at, now)
    return now + RetryPolicy.from_config(config).delay_ms(n)
