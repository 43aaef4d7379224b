"""Claiming: due tasks leased in batches, held in a heap, each attempt started at its time.

Every `POLL_MS`, or at once when a part asks (`Wakeup.claim`), the producer leases, in one SQL
statement, the RUNNING tasks due within the next `WINDOW_MS` that no live process holds,
keeps them in the heap (`Holdings`) and sleeps until the earliest is due, less the time its
start takes to write (`StartLead`): the runner sends it at its time. A lease passes to
another process only once expired, so a task never runs twice at once, also with several
processes on one database. A claim waits on the writer, behind other writes: due tasks keep
starting meanwhile.

Flow control lives in the claim (`store/flow.py`): a task with a flow key is leased only within
its key's limits, never at registration, and may carry a start time its key's rate allotted;
here it only waits for that start and keeps its key's starts spaced. An outcome of such a task
asks for a claim at once: the key's next task may go.

Time: waits and periods use the monotonic clock, due and lease comparisons the wall clock, so
a clock step neither stalls polling nor re-sends a task: a claim never returns a task whose
attempt this process still has open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tasks_server.destinations import Circuits
from tasks_server.metrics import Metrics
from tasks_server.scheduler.background import Background
from tasks_server.scheduler.held import MAX_HELD, WINDOW_MS, Entry, Holder, Holdings, Wakeup
from tasks_server.scheduler.lead import StartLead
from tasks_server.scheduler.runner import AttemptRunner
from tasks_server.scheduler.slots import Slots
from tasks_server.service import Service
from tasks_server.store.base import Due

log = logging.getLogger(__package__)  # one log for the scheduler's parts

POLL_MS = 500  # look for tasks that came within the window (other processes, time passing)
CLAIM_BATCH = 2_000
FIRE_BATCH = 100  # attempts started per loop turn: the first leave before the last are prepared


class Producer(Service):
    name = "scheduler-producer"

    def __init__(
        self,
        holder: Holder,
        holdings: Holdings,
        slots: Slots,
        wakeup: Wakeup,
        background: Background,
        runner: AttemptRunner,
        metrics: Metrics,
        circuits: Circuits,
        lead: StartLead,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(log, background.outage)
        self._holder = holder
        self._holdings = holdings
        self._slots = slots
        self._wakeup = wakeup
        self._background = background
        self._runner = runner
        self._metrics = metrics
        self._monotonic = monotonic
        self._circuits = circuits
        self._lead = lead
        self._next_poll = float("-inf")
        self._claiming: asyncio.Task[None] | None = None
        self._more = False  # the last turn left due attempts it could have started
        self._in_flight_shown = 0  # what the gauge says
        # The last start of each rate-limited flow key (owner, key) here.
        self._flow_started: dict[tuple[str, str | None], int] = {}

    async def run_once(self) -> None:
        """One turn: a claim begun if one is wanted or the poll is due, due attempts started."""
        self._wakeup.event.clear()  # nothing below rings it: attempts and claims start later
        if not self._claim_running() and (
            self._wakeup.claim_wanted or self._monotonic() >= self._next_poll
        ):
            self._wakeup.claim_wanted = False
            self._next_poll = self._monotonic() + POLL_MS / 1000
            self._claiming = asyncio.create_task(self._claim_turn(), name="scheduler-claim")
        self._more = self._fire_due()
        # Once per turn, not per change: the gauge is a write to shared memory in cluster
        # mode, and an attempt's end always wakes this loop.
        if self._in_flight_shown != self._slots.in_flight:
            self._in_flight_shown = self._slots.in_flight
            self._metrics.in_flight.set(self._slots.in_flight)

    async def pause(self) -> None:
        """Until the earliest due task, the next poll or a wake-up (a claim ending, a task
        held, an attempt ending)."""
        if self._more:
            self._more = False
            await asyncio.sleep(0)  # let the attempts just started reach the network
            return
        claim_running = self._claim_running()
        if self._wakeup.claim_wanted and not claim_running:
            return
        delay = None if claim_running else self._next_poll - self._monotonic()
        next_start = self._holdings.next_start()
        if next_start is not None and self._slots.free():
            due_in = (next_start - self._lead.ms() - self._holder.clock()) / 1000
            delay = due_in if delay is None else min(delay, due_in)
        if delay is None or delay > 0:
            # Not wait_for: on 3.11 it can swallow a cancel that lands as the wake-up
            # completes, and then stopping would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wakeup.event.wait()

    async def stop(self) -> None:
        await super().stop()
        if self._claiming is not None and not self._claiming.done():
            self._claiming.cancel()  # its leases are freed with the others when stopping
            await asyncio.gather(self._claiming, return_exceptions=True)

    async def claim(self) -> None:
        """Lease the tasks due within the window, as many as may be held, having read the
        circuits not closed (their tasks are held by the circuits, not claimable)."""
        room = min(CLAIM_BATCH, MAX_HELD - len(self._holdings))
        if room <= 0:
            return
        holder = self._holder
        self._circuits.update(await holder.store.circuits())
        rows = await holder.store.claim(
            holder=holder.id, window_ms=WINDOW_MS, lease_ms=holder.lease_ms, limit=room
        )
        for row in rows:
            self._holdings.hold(row, None)
        if len(rows) == room:
            self._wakeup.claim()  # more may be due: keep draining

    def _claim_running(self) -> bool:
        return self._claiming is not None and not self._claiming.done()

    async def _claim_turn(self) -> None:
        try:
            await self._guarded(self.claim(), "scheduler-claim")
        finally:
            self._wakeup.ring()

    def _fire_due(self) -> bool:
        """Start up to FIRE_BATCH due attempts; True when more are due and could start."""
        now = self._holder.clock()
        horizon = now + self._lead.ms()  # starts written ahead of their time (`StartLead`)
        fired = 0
        while (start := self._holdings.next_start()) is not None and start <= horizon:
            if not self._slots.free():
                break
            if fired == FIRE_BATCH:
                return True
            entry = self._holdings.pop()
            held = self._holdings.current(entry)
            if held is None:
                continue  # superseded entry
            owner = held.row.owner_id
            if self._slots.parked(owner, entry):
                continue
            at = max(start, now)  # when its request leaves
            if held.row.spacing_ms and not self._flow_turn(held.row, entry, at):
                continue
            self._slots.started(owner)
            fired += 1
            attempt = self._runner.attempt(held, at)
            held.task = self._background.spawn(attempt, f"attempt-{held.row.id}")
        return False

    def _flow_turn(self, row: Due, entry: Entry, at: int) -> bool:
        """Whether a rate-limited task may leave at `at`; if not it goes back to the heap."""
        key = (row.owner_id, row.flow_key)
        ready = self._flow_started.get(key, 0) + row.spacing_ms
        if ready > at:
            self._holdings.push((ready, *entry[1:]))
            return False
        if len(self._flow_started) >= MAX_HELD:  # keys long idle are all that is dropped
            self._flow_started = {k: t for k, t in self._flow_started.items() if t > at - 60_000}
        self._flow_started[key] = at
        return True
