"""Turns due rows into attempts and attempts' outcomes back into rows.

The database schedules; memory only caches. Every few hundred milliseconds the scheduler
leases (in one SQL statement) the RUNNING tasks due within the next `WINDOW_MS` that no live
process holds, keeps them in a heap, and sleeps exactly until the earliest. A lease passes to
another process only once expired, so a task never runs twice at once, also with several
processes on one database. A crash loses nothing: leases are cleared when a lone server
starts (or expire in a cluster), and every RUNNING task is claimed again at its own time.

"In flight" is a fact in the database: an attempt row is committed before the request is
sent and closed in the same transaction as the outcome. Memory holds only the leased tasks
and the asyncio task of each attempt. Client changes (pause, resume, revoke, edit, execute,
delete) bump the row's `version`. The API tells the local scheduler at once; in cluster mode
the holder also compares its leases' versions every `RECONCILE_MS`. An attempt whose version
changed is aborted, and an outcome is only recorded for the version it was run with.

Flow control lives in the claim (`store/flow.py`): a task with a flow key is leased only
within its key's limits, never at registration, and may carry a start time its key's rate
allotted; here it only waits for that start and keeps its key's starts spaced. An outcome
of such a task asks for a claim at once: the key's next task may go.

Time: waits and periods use the monotonic clock, due and lease comparisons the wall clock
(`clock`), so a clock step neither stalls polling nor re-sends a task: a claim never returns
a task whose attempt this process still has open.

The database can be away (full disk, restart, no free connection). A failed write is retried
with backoff for as long as it takes, never dropped while this process lives: an outcome is
recorded as soon as the database answers, so the target is not sent it again. Only an outcome
write that keeps failing while the database works (not StoreUnavailable) gives way, after the
quick retries, to releasing the task, which then runs again. A failure of ours before the
request was sent (a key that could not be read) is not the target's: the attempt ends
INTERRUPTED, the task is released without spending a retry and set back here, doubling up to
a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ulid import ULID

from tasks_server import callbacks
from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.executor.options import Attempt
from tasks_server.executor.runner import Outcome, Runner
from tasks_server.logs import OutageLog
from tasks_server.metrics import Metrics
from tasks_server.models.queues import QueueRegistration, QueueState
from tasks_server.retry import RetryPolicy, retry_after_ms
from tasks_server.store.base import Due, NewTask, QueueRow, Result, StoreUnavailable, TaskStore
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW_MS = 2_000  # lease tasks due this far ahead
POLL_MS = 500  # look for tasks that came within the window (other processes, time passing)
LEASE_MS = 60_000  # a lease outlives its holder by at most this long
RENEW_MS = 10_000
RECONCILE_MS = 250  # cluster mode: how soon a change made in another process reaches its holder
CLAIM_BATCH = 2_000
MAX_HELD = 20_000  # tasks leased and waiting in memory
MAX_IN_FLIGHT = 1_000  # concurrent attempts; the rest wait their turn in the heap
FIRE_BATCH = 100  # attempts started per loop turn: the first leave before the last are prepared
WRITE_RETRIES_S = (0.05, 0.2, 0.5, 1.0, 2.0)  # backoff of a failed write; the last repeats
SETBACK_MS = (500, 60_000)  # a task that failed here before sending waits this, doubling to

RUNNING = QueueState.RUNNING.value


@dataclass(slots=True)
class _Held:
    """A task this process holds the lease of, waiting in the heap or in flight."""

    row: Due
    reg: QueueRegistration | None = None
    task: asyncio.Task[None] | None = None
    recording: bool = False
    claimed: Due | None = None  # claimed again (its retry) while its outcome was written


@dataclass(slots=True)
class _Tasks:
    """Background tasks with references kept and failures logged."""

    running: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, StoreUnavailable):
            # An outage, not a fault: the registration waiting on it answers 503 and the API
            # logs the outage; the scheduler's own writes retry through one (`_persist`).
            log.debug("%s failed: %s", task.get_name(), exc)
        else:
            log.error("%s failed", task.get_name(), exc_info=exc)


class Scheduler:
    def __init__(
        self,
        store: TaskStore,
        codec: TaskCodec,
        runner: Runner,
        gate: ConnectivityGate,
        metrics: Metrics,
        *,
        signing_keys: Callable[[str], Awaitable[tuple[bytes, ...]]],
        cluster: bool = False,
        max_in_flight_per_owner: int = 250,
        max_attempts_kept: int = 100,
        lease_ms: int = LEASE_MS,
        clock: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.lease_owner = str(ULID())
        self._store = store
        self._codec = codec
        self._runner = runner
        self._gate = gate
        self._metrics = metrics
        self._signing_keys = signing_keys
        self._cluster = cluster
        self._per_owner = max_in_flight_per_owner
        self._attempts_kept = max_attempts_kept
        self._lease_ms = lease_ms
        self._renew_ms = lease_ms * RENEW_MS // LEASE_MS  # the same share of the lease
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._held: dict[str, _Held] = {}
        self._heap: list[tuple[int, int, str, int]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._in_flight_shown = 0  # what the gauge says
        self._owner_in_flight: dict[str, int] = defaultdict(int)
        # Due entries of owners at their in-flight share, back in the heap when one returns.
        self._parked: dict[str, list[tuple[int, int, str, int]]] = defaultdict(list)
        # The last start of each rate-limited flow key (owner, key) here.
        self._flow_started: dict[tuple[str, str | None], int] = {}
        # Tasks whose attempts failed here before sending: how often, and not before when.
        self._setbacks: dict[str, tuple[int, int]] = {}
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()  # set when stopping: ends the pauses of retried writes
        self._claim_wanted = True
        self._stopping = False
        self._tasks = _Tasks()
        self._outage = OutageLog(log, "scheduler: the database is unavailable")
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
        self._halt.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        in_flight = {held.task: held for held in self._held.values() if held.task is not None}
        if in_flight:
            log.info("waiting for %d attempts in flight", len(in_flight))
            _, pending = await asyncio.wait(in_flight, timeout=grace_s)
            # An attempt writing its outcome is let finish: its request was answered.
            writing = {task for task in pending if in_flight[task].recording}
            if writing:
                log.info("letting %d outcome writes finish", len(writing))
            for task in pending - writing:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        while self._tasks.running:  # outcome writes spawn follow-ups: wait for all of them
            await asyncio.gather(*self._tasks.running, return_exceptions=True)
        await self._store.release_holder(self.lease_owner, now=self._clock())
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
            return self.lease_owner, now + self._lease_ms
        return None

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` as a tracked task that stop() waits for (e.g. a write to finish even
        when its request handler is cancelled)."""
        return self._tasks.spawn(coro, name)

    def adopt(self, row: QueueRow, reg: QueueRegistration) -> None:
        """Hold a task registered with a lease from `lease_for`."""
        self._hold(row.due, reg)

    def changed(self, queue_id: str, row: QueueRow | None) -> None:
        """A client changed (or deleted, `row` None) a task; act on it if held here."""
        held = self._held.get(queue_id)
        if held is None:
            if row is not None and self._due_soon(row):
                self._claim_wanted = True
                self._wake.set()
            return
        if held.recording:
            return  # the outcome being written carries the old version and will not apply
        if held.task is not None:
            if row is None or row.version != held.row.version:
                held.task.cancel()
            return
        self._settle(held, row)

    def notice(self, queue_id: str, version: int | None) -> None:
        """Another process changed a task (`version` None: deleted), as its store announces
        it: catch up now rather than at the next reconcile or poll."""
        if self._stopping:
            return
        held = self._held.get(queue_id)
        if held is None:
            self._claim_wanted = True  # it may have become due soon (execute now, earlier)
            self._wake.set()
        elif version is None or version != held.row.version:
            self._tasks.spawn(self._catch_up(queue_id), f"notice-{queue_id}")

    def resync(self) -> None:
        """Notices may have been lost (the store listens again after its session ended): claim
        now rather than at the next poll; held tasks are compared at the next reconcile."""
        if not self._stopping:
            self._claim_wanted = True
            self._wake.set()

    async def _catch_up(self, queue_id: str) -> None:
        row = await self._store.reload(queue_id)
        held = self._held.get(queue_id)
        if held is not None and (row is None or row.version != held.row.version):
            self.changed(queue_id, row)

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        next_poll = self._monotonic()
        # A claim waits on the writer, behind other writes: due tasks keep firing meanwhile.
        claiming: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                claim_running = claiming is not None and not claiming.done()
                if not claim_running and (self._claim_wanted or self._monotonic() >= next_poll):
                    self._claim_wanted = False
                    next_poll = self._monotonic() + POLL_MS / 1000
                    claiming = asyncio.create_task(self._claim_logged(), name="scheduler-claim")
                    claim_running = True
                more = self._fire_due()
                self._wake.clear()
                # Once per turn, not per change: the gauge is a write to shared memory in
                # cluster mode, and an attempt's end always wakes this loop.
                if self._in_flight_shown != self._in_flight:
                    self._in_flight_shown = self._in_flight
                    self._metrics.in_flight.set(self._in_flight)
                if more:
                    await asyncio.sleep(0)  # let the attempts just started reach the network
                    continue
                if self._claim_wanted and not claim_running:
                    continue
                # A claim ending wakes us; otherwise poll on time.
                delay = None if claim_running else next_poll - self._monotonic()
                if self._heap and self._in_flight < MAX_IN_FLIGHT:
                    due_in = (self._heap[0][0] - self._clock()) / 1000
                    delay = due_in if delay is None else min(delay, due_in)
                if delay is None or delay > 0:
                    # Not wait_for: on 3.11 it can swallow a cancel that lands as the wake-up
                    # completes, and then stop() would wait for this loop forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
        finally:
            if claiming is not None and not claiming.done():
                claiming.cancel()  # its leases are freed with the others when stopping
                with contextlib.suppress(asyncio.CancelledError):
                    await claiming

    async def _claim_logged(self) -> None:
        try:
            await self._claim()
        except StoreUnavailable as exc:
            self._outage.failed(exc, action="claim")
        except Exception:
            log.exception("claiming due tasks failed", extra={"action": "claim"})
        finally:
            self._wake.set()

    async def _claim(self) -> None:
        room = min(CLAIM_BATCH, MAX_HELD - len(self._held))
        if room <= 0:
            return
        rows = await self._store.claim(
            holder=self.lease_owner, window_ms=WINDOW_MS, lease_ms=self._lease_ms, limit=room
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
            entry = heapq.heappop(self._heap)
            held = self._current(entry)
            if held is None:
                continue  # superseded entry
            owner = held.row.owner_id
            if self._owner_in_flight[owner] >= self._per_owner:
                # Its turn comes when one of the owner's attempts ends.
                heapq.heappush(self._parked[owner], entry)
                continue
            if held.row.spacing_ms and not self._flow_turn(held.row, entry, now):
                continue
            self._count_in_flight(owner, +1)
            fired += 1
            held.task = self._tasks.spawn(self._attempt(held), f"attempt-{held.row.id}")
        return False

    def _current(self, entry: tuple[int, int, str, int]) -> _Held | None:
        """The held task a heap entry stands for, unless a newer entry or attempt replaced it."""
        held = self._held.get(entry[2])
        if held is None or held.row.version != entry[3] or held.task is not None:
            return None
        return held

    def _flow_turn(self, row: Due, entry: tuple[int, int, str, int], now: int) -> bool:
        """Whether a rate-limited task may start now; if not it goes back to the heap."""
        key = (row.owner_id, row.flow_key)
        ready = self._flow_started.get(key, 0) + row.spacing_ms
        if ready > now:
            heapq.heappush(self._heap, (ready, *entry[1:]))
            return False
        if len(self._flow_started) >= MAX_HELD:  # keys long idle are all that is dropped
            self._flow_started = {k: t for k, t in self._flow_started.items() if t > now - 60_000}
        self._flow_started[key] = now
        return True

    def _count_in_flight(self, owner: str, change: int) -> None:
        self._in_flight += change
        self._owner_in_flight[owner] += change
        if change < 0:
            if not self._owner_in_flight[owner]:
                del self._owner_in_flight[owner]
            # One slot is free: the owner's earliest parked task takes it (one, not all of
            # them: with thousands parked, returning all on each end costs O(n) per attempt).
            parked = self._parked.get(owner)
            while parked:
                entry = heapq.heappop(parked)
                if self._current(entry) is not None:
                    heapq.heappush(self._heap, entry)
                    break
            if not parked:
                self._parked.pop(owner, None)
            self._wake.set()

    def _hold(self, row: Due, reg: QueueRegistration | None) -> None:
        current = self._held.get(row.id)
        if current is not None and current.recording:
            # Leased again (a retry due soon) by a claim that ran right after the outcome
            # write: held once that write's news is in, not dropped to wait out its lease.
            current.claimed = row
            return
        if current is not None and current.task is not None:
            return  # its attempt still runs here: never a second one beside it
        self._held[row.id] = _Held(row, reg)
        starts_at = max(row.starts_at, self._setbacks.get(row.id, (0, 0))[1])
        heapq.heappush(self._heap, (starts_at, next(self._seq), row.id, row.version))
        self._wake.set()

    def _due_soon(self, row: QueueRow) -> bool:
        return row.state == RUNNING and row.estimate_execution_at <= self._clock() + WINDOW_MS

    def _settle(self, held: _Held, row: QueueRow | None) -> None:
        """After a change: hold `row` again if it is due soon, else drop it and free its lease.

        Only for the entry `held` still in place: an older attempt's late news never
        replaces what a newer change already decided."""
        queue_id = held.row.id
        if self._held.get(queue_id) is not held:
            return
        if row is not None and self._due_soon(row):
            self._hold(row.due, None)
            return
        del self._held[queue_id]
        self._setbacks.pop(queue_id, None)
        if row is not None:
            release = self._persist(lambda: self._store.release(self.lease_owner, queue_id))
            self._tasks.spawn(release, "release-lease")

    def _drop(self, held: _Held) -> None:
        """Stop holding a task this process will not run now, and give it up: its open
        attempt ends INTERRUPTED and its lease goes, once the database takes the write."""
        queue_id = held.row.id
        if self._held.get(queue_id) is held:
            del self._held[queue_id]
        self._tasks.spawn(self._persist(lambda: self._abandon(queue_id)), f"abandon-{queue_id}")

    def _abandon(self, queue_id: str) -> Awaitable[None]:
        return self._store.abandon(holder=self.lease_owner, queue_id=queue_id, now=self._clock())

    def _set_back(self, held: _Held) -> None:
        """An attempt failed here before its request was sent: release the task without
        spending a retry, and run it here no sooner than a doubling pause from now."""
        times = self._setbacks.get(held.row.id, (0, 0))[0] + 1
        base, cap = SETBACK_MS
        self._setbacks[held.row.id] = (times, self._clock() + min(cap, base << (times - 1)))
        self._drop(held)

    async def _persist(
        self,
        write: Callable[[], Awaitable[T]],
        instead: Callable[[], Awaitable[None]] | None = None,
    ) -> T | None:
        """Run `write` until it succeeds, pausing with backoff; None when, once the quick
        retries are spent, `instead` succeeded first (tried only while `write` fails for a
        reason other than the database being away). Raises only when stopping."""
        for turn in itertools.count():
            try:
                return await write()
            except Exception as exc:
                error = exc
            # Only for a write that fails while the database works: through an outage, even
            # one that lets some writes through, the outcome waits (releasing the task would
            # send the target again what it already has).
            transient = isinstance(error, StoreUnavailable)
            if instead is not None and turn >= len(WRITE_RETRIES_S) and not transient:
                try:
                    await instead()
                    return None
                except Exception as exc:
                    error = exc
            if self._stopping:
                raise error
            pause = WRITE_RETRIES_S[min(turn, len(WRITE_RETRIES_S) - 1)]
            if turn == 0:  # each write of an outage would say so: once per outage here
                self._outage.failed(error, action="write_retried")
            log.debug("database write failed, retrying in %.2f s: %s", pause, error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._halt.wait()
        raise AssertionError("unreachable")

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, held: _Held) -> None:
        row = held.row
        reg: QueueRegistration | None = None
        number: int | None = None
        started: tuple[int, int] | None = None  # the attempt row asked for: number, start
        lateness_ms = 0
        try:
            await self._gate.wait_open()
            start = self._clock()
            started = (row.attempts + 1, start)
            lateness_ms = max(0, start - row.starts_at)
            number = await self._store.started(holder=self.lease_owner, due=row, now=start)
            if number is None:  # changed since it was held: act on what it is now
                self._count_in_flight(row.owner_id, -1)
                held.task = None
                self._settle(held, await self._store.reload(row.id))
                return
            reg = held.reg or self._codec.open_request(row.request, row.id)
            signing_secrets = await self._signing_keys(row.owner_id)
            self._metrics.lateness.observe(lateness_ms / 1000)
            if row.flow_key is not None:
                self._metrics.flow_wait.observe(max(0, start - row.estimate_execution_at) / 1000)
            attempt = Attempt(
                queue_id=row.id,
                owner_id=row.owner_id,
                retry_count=row.retry_count,
                retry_limit=row.retry_limit,
                due=row.estimate_execution_at,
                timeout_ms=_timeout_ms(reg, row, start),
                signing_secrets=signing_secrets,
                sent_at_s=start // 1000,
            )
            outcome = await self._runner.run(reg, attempt)
        except asyncio.CancelledError:
            self._count_in_flight(row.owner_id, -1)
            held.task = None
            if self._stopping:
                raise  # its open attempt is closed as INTERRUPTED with the leases
            log.info("attempt aborted", extra={"action": "attempt_aborted", "queue_id": row.id})
            current = await self._persist(
                lambda: self._store.aborted(
                    holder=self.lease_owner, queue_id=row.id, now=self._clock(), started=started
                )
            )
            self._settle(held, current)
            return
        except Exception as exc:
            self._count_in_flight(row.owner_id, -1)
            held.task = None
            # Nothing was sent (the start could not be written, or the request prepared):
            # ours to fix, never the target's failure.
            if isinstance(exc, StoreUnavailable):
                self._outage.failed(exc, action="attempt_set_back")
            else:
                log.exception(
                    "an attempt failed before its request was sent; the task runs again later",
                    extra={"action": "attempt_set_back", "queue_id": row.id},
                )
            self._set_back(held)
            return
        else:
            self._count_in_flight(row.owner_id, -1)
        # From here on nothing cancels the attempt: changed() leaves it alone and stop()
        # lets it finish, so a pause cannot cut the outcome write.
        held.recording = True
        await self._record(held, reg, outcome, number, lateness_ms)

    async def _record(
        self,
        held: _Held,
        reg: QueueRegistration,
        outcome: Outcome,
        number: int,
        lateness_ms: int,
    ) -> None:
        row = held.row
        now = self._clock()
        trace = reg.config.trace_response_data
        response = self._codec.seal(outcome.body, row.id, "response") if trace else None
        self._metrics.count_attempt(outcome=outcome.kind.value, status_code=outcome.status_code)
        self._metrics.attempt_duration.observe(outcome.duration_ms / 1000)
        retry_at = 0
        if outcome.succeeded or outcome.final or row.retry_count >= row.retry_limit:
            state: str | None = QueueState.SUCCESS if outcome.succeeded else QueueState.ERROR
            event = str(state).lower()
        else:
            state, event = None, "retry_scheduled"
            waited = retry_after_ms(outcome.retry_after, now)
            retry_at = _next_retry_at(reg, row.retry_count + 1, now, waited, self._rng)
        error = None
        if outcome.error is not None:
            error = self._codec.seal(outcome.error.encode(), row.id, f"attempt-{number}-error")
        result = Result(
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

        async def write() -> tuple[tuple[callbacks.Kind, NewTask] | None, bool]:
            callback = await self._callback(row, reg, result, outcome.body if trace else None)
            applied = await self._store.record(
                holder=self.lease_owner,
                due=row,
                result=result,
                keep=self._attempts_kept,
                callback=None if callback is None else callback[1],
            )
            return callback, applied

        try:
            written = await self._persist(write, instead=lambda: self._abandon(row.id))
        except Exception:  # stopping: the lease goes with the others, or expires
            log.exception("an outcome could not be recorded", extra={"queue_id": row.id})
            written = None
        if written is None:
            log.warning(
                "an outcome could not be recorded; the task was released to run again",
                extra={"action": "outcome_lost", "queue_id": row.id},
            )
            held.recording = False
            if self._held.get(row.id) is held:
                del self._held[row.id]
            return
        callback, applied = written
        self._setbacks.pop(row.id, None)
        event = event if applied else "outcome_discarded"
        self._log_outcome(row, number, outcome, event, retry_at, lateness_ms)
        # A retry due soon, or a flow key's turn for the next of its tasks: claim now.
        retry_soon = state is None and retry_at <= now + WINDOW_MS
        if applied and (retry_soon or row.flow_key is not None):
            self._claim_wanted = True
            self._wake.set()
        if applied and state is not None:
            self._count_callbacks(row, reg, state, callback)
        if applied:
            held.recording = False
            if self._held.get(row.id) is held:
                del self._held[row.id]
            if held.claimed is not None:
                self._hold(held.claimed, None)
            return
        try:  # changed while in flight: act on what it is now (still recording: uncancelled)
            current = await self._store.reload(row.id)
        finally:
            held.recording = False
        self._settle(held, current)

    async def _callback(
        self, row: Due, reg: QueueRegistration, result: Result, response: bytes | None
    ) -> tuple[callbacks.Kind, NewTask] | None:
        """The callback task an ending outcome stores with it, when the task has one."""
        if result.state is None:
            return None
        found = callbacks.wanted(reg.config, result.state)
        if found is None:
            return None
        parent = await self._store.get(row.owner_id, row.id)  # metadata is not in `Due`
        if parent is None:
            return None  # deleted meanwhile: the outcome does not apply either
        metadata = None
        if parent.metadata is not None:
            metadata = self._codec.open_json(parent.metadata, row.id, "metadata")
        kind, callback = found
        finished = callbacks.Finished(
            queue_id=row.id,
            state=result.state,
            status_code=result.status_code,
            attempts=result.attempt,
            response=response,
            metadata=metadata,
            schedule_id=parent.schedule_id,
        )
        task = callbacks.task(
            self._codec,
            callback,
            kind,
            finished,
            queue_id=str(ULID()),
            now=result.finished_at,
            ip_version=reg.config.ip_version,
        )
        return kind, task

    def _count_callbacks(
        self,
        row: Due,
        reg: QueueRegistration,
        state: str,
        callback: tuple[callbacks.Kind, NewTask] | None,
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
            self._claim_wanted = True
            self._wake.set()
        if callbacks.kind_of(reg) is not None:
            self._metrics.callbacks_finished.labels(outcome=state).inc()

    @staticmethod
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

    # --- housekeeping ---------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        interval = RECONCILE_MS if self._cluster else self._renew_ms
        last_renewal = self._monotonic()
        while True:
            await asyncio.sleep(interval / 1000)
            try:
                if self._cluster:
                    await self._reconcile()
                if self._monotonic() - last_renewal >= self._renew_ms / 1000:
                    last_renewal = self._monotonic()
                    await self._store.renew(self.lease_owner, list(self._held), self._lease_ms)
            except StoreUnavailable as exc:
                self._outage.failed(exc, action="housekeeping")
            except Exception:
                log.exception("scheduler housekeeping failed", extra={"action": "housekeeping"})

    async def _reconcile(self) -> None:
        """Catch up with changes made by other processes to the tasks held here."""
        if not self._held:
            return
        current = await self._store.leased_versions(self.lease_owner)
        for queue_id, held in list(self._held.items()):
            version = current.get(queue_id)
            if held.recording or (version is not None and version[1] == held.row.version):
                continue
            self.changed(queue_id, await self._store.reload(queue_id))


def _timeout_ms(reg: QueueRegistration, row: Due, start: int) -> int:
    """`timeoutAt` is the first attempt's absolute deadline; retries use `timeout`."""
    if row.retry_count == 0 and reg.config.timeout_at is not None:
        return reg.config.timeout_at - start
    return reg.config.timeout


def _next_retry_at(
    reg: QueueRegistration, n: int, now: int, retry_after: int | None, rng: random.Random
) -> int:
    config = reg.config
    if n == 1 and config.retry_at is not None:
        return max(config.retry_at, now + (retry_after or 0))
    return now + RetryPolicy.from_config(config).wait_ms(n, retry_after_ms=retry_after, rng=rng)
