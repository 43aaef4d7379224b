"""`Scheduler`: the parts built and wired, what the app and the API call, the shutdown order."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ulid import ULID

from tasks_server.codec import TaskCodec
from tasks_server.connectivity import ConnectivityGate
from tasks_server.destinations import CAP_MS, Circuits
from tasks_server.executor.runner import Runner
from tasks_server.logs import OutageLog
from tasks_server.metrics import Metrics
from tasks_server.models.queues import QueueRegistration
from tasks_server.scheduler.background import Background
from tasks_server.scheduler.completer import Completer
from tasks_server.scheduler.held import MAX_HELD, WINDOW_MS, Holder, Holdings, Wakeup
from tasks_server.scheduler.lead import StartLead
from tasks_server.scheduler.maintenance import LEASE_MS, Maintenance
from tasks_server.scheduler.producer import Producer
from tasks_server.scheduler.runner import AttemptRunner
from tasks_server.scheduler.slots import Slots
from tasks_server.store.base import CircuitPolicy, QueueRow, TaskStore
from tasks_server.timeutil import now_ms
from tasks_server.tracing import Tracing

log = logging.getLogger(__package__)  # one log for the scheduler's parts

T = TypeVar("T")


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
        tracing: Tracing | None = None,
        cluster: bool = False,
        max_in_flight_per_owner: int = 250,
        max_attempts_kept: int = 100,
        circuit_failures: int = 10,
        circuit_open_ms: int = 30_000,
        lease_ms: int = LEASE_MS,
        clock: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.lease_owner = str(ULID())
        self._holder = holder = Holder(self.lease_owner, store, clock, lease_ms)
        self._background = background = Background(
            OutageLog(log, "scheduler: the database is unavailable")
        )
        wakeup = Wakeup()
        self._holdings = holdings = Holdings(holder, background, wakeup)
        slots = Slots(holdings, wakeup, per_owner=max_in_flight_per_owner)
        circuits = Circuits()
        lead = StartLead(monotonic)
        self._completer = completer = Completer(
            holder,
            holdings,
            wakeup,
            background,
            codec,
            metrics,
            max_attempts_kept=max_attempts_kept,
            circuits=circuits,
            policy=CircuitPolicy(circuit_failures, circuit_open_ms, CAP_MS),
            rng=rng or random.Random(),
        )
        attempts = AttemptRunner(
            holder,
            holdings,
            slots,
            background,
            completer,
            runner,
            gate,
            codec,
            metrics,
            circuits,
            signing_keys=signing_keys,
            tracing=tracing or Tracing(),
            lead=lead,
        )
        self.producer = Producer(
            holder,
            holdings,
            slots,
            wakeup,
            background,
            attempts,
            metrics,
            circuits,
            lead,
            monotonic=monotonic,
        )
        self._maintenance = Maintenance(
            holder,
            holdings,
            wakeup,
            background,
            cluster=cluster,
            monotonic=monotonic,
            sweep=completer.queue_dependency_callbacks,
        )

    async def start(self) -> None:
        self.producer.start()
        self._maintenance.start()

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, let attempts finish up to `grace_s`, abort the rest, free leases."""
        self._background.halt()
        await asyncio.gather(self.producer.stop(), self._maintenance.stop())
        in_flight = self._holdings.in_flight()
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
        await self._background.drain()
        holder = self._holder
        await holder.store.release_holder(holder.id, now=holder.clock())
        self._holdings.clear()

    # --- what the API tells the scheduler -------------------------------------------------

    def lease_for(self, due: int) -> tuple[str, int] | None:
        """A lease (holder, its length) for a task being registered, when it is due soon
        enough to hold now."""
        now = self._holder.clock()
        room = len(self._holdings) < MAX_HELD and not self._background.stopping
        if due <= now + WINDOW_MS and room:
            return self.lease_owner, self._holder.lease_ms
        return None

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` as a tracked task that stop() waits for (e.g. a write to finish even
        when its request handler is cancelled)."""
        return self._background.spawn(coro, name)

    def adopt(self, row: QueueRow, reg: QueueRegistration) -> None:
        """Hold a task registered with a lease from `lease_for`."""
        self._holdings.hold(row.due, reg)

    def changed(self, queue_id: str, row: QueueRow | None) -> None:
        """A client changed (or deleted, `row` None) a task; act on it if held here."""
        self._holdings.changed(queue_id, row)

    def settled(self) -> None:
        """A client ended (revoked or deleted) a task with dependents: some may be due now,
        some may have failed with callbacks to queue."""
        self._completer.settled()

    def notice(self, queue_id: str, version: int | None) -> None:
        """Another process changed a task (`version` None: deleted), as its store announces
        it: catch up now rather than at the next reconcile or poll."""
        self._maintenance.notice(queue_id, version)

    def resync(self) -> None:
        """Notices may have been lost: claim now; held tasks are compared at the next
        reconcile."""
        self._maintenance.resync()
