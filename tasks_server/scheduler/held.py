"""The tasks this process holds the lease of, by id and in the order they are due.

A held task waits in the heap until its start, then runs (its asyncio task set), then has its
outcome written (`recording`). Client changes (pause, resume, revoke, edit, execute, delete)
bump the row's `version` and reach a held task here (`changed`): one waiting is held again or
let go at once; one running whose version changed is aborted; an outcome being written is let
be, since it carries the old version and will not apply. Heap entries are never removed: one
that a newer hold or an attempt replaced is skipped when its time comes (`current`).

A failure of ours before the request was sent (a key that could not be read) is not the
target's: the attempt ends INTERRUPTED, the task is released without spending a retry and set
back here, doubling up to a minute.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tasks_server.models.queues import QueueRegistration, QueueState
from tasks_server.scheduler.background import Background
from tasks_server.store.base import Due, QueueRow, TaskStore

WINDOW_MS = 2_000  # lease tasks due this far ahead
MAX_HELD = 20_000  # tasks leased and waiting in memory
SETBACK_MS = (500, 60_000)  # a task that failed here before sending waits this, doubling to

RUNNING = QueueState.RUNNING.value

Entry = tuple[int, int, str, int]  # a heap entry: start, sequence, queue id, version


@dataclass(frozen=True, slots=True)
class Holder:
    """This process as a holder of leases: its id, the store they are taken in, how long
    they last, and the wall clock due times and leases are compared on."""

    id: str
    store: TaskStore
    clock: Callable[[], int]
    lease_ms: int


@dataclass(slots=True)
class Held:
    """A task this process holds the lease of, waiting in the heap or in flight."""

    row: Due
    reg: QueueRegistration | None = None
    task: asyncio.Task[None] | None = None
    recording: bool = False
    claimed: Due | None = None  # claimed again (its retry) while its outcome was written


class Wakeup:
    """What the parts ask of the producer's loop: look at the heap again, or claim now."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.claim_wanted = True

    def ring(self) -> None:
        self.event.set()

    def claim(self) -> None:
        self.claim_wanted = True
        self.event.set()


class Holdings:
    def __init__(self, holder: Holder, background: Background, wakeup: Wakeup) -> None:
        self._holder = holder
        self._background = background
        self._wakeup = wakeup
        self._held: dict[str, Held] = {}
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        # Tasks whose attempts failed here before sending: how often, and not before when.
        self._setbacks: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def get(self, queue_id: str) -> Held | None:
        return self._held.get(queue_id)

    def ids(self) -> list[str]:
        return list(self._held)

    def items(self) -> list[tuple[str, Held]]:
        return list(self._held.items())

    def in_flight(self) -> dict[asyncio.Task[None], Held]:
        return {held.task: held for held in self._held.values() if held.task is not None}

    def clear(self) -> None:
        self._held.clear()

    # --- the heap -------------------------------------------------------------------------

    def next_start(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Entry:
        return heapq.heappop(self._heap)

    def push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, entry)

    def current(self, entry: Entry) -> Held | None:
        """The held task a heap entry stands for, unless a newer entry or attempt replaced it."""
        held = self._held.get(entry[2])
        if held is None or held.row.version != entry[3] or held.task is not None:
            return None
        return held

    # --- holding and letting go -----------------------------------------------------------

    def _due_soon(self, row: QueueRow) -> bool:
        return (
            row.state == RUNNING and row.estimate_execution_at <= self._holder.clock() + WINDOW_MS
        )

    def hold(self, row: Due, reg: QueueRegistration | None) -> None:
        current = self._held.get(row.id)
        if current is not None and current.recording:
            # Leased again (a retry due soon) by a claim that ran right after the outcome
            # write: held once that write's news is in, not dropped to wait out its lease.
            current.claimed = row
            return
        if current is not None and current.task is not None:
            return  # its attempt still runs here: never a second one beside it
        self._held[row.id] = Held(row, reg)
        starts_at = max(row.starts_at, self._setbacks.get(row.id, (0, 0))[1])
        self.push((starts_at, next(self._seq), row.id, row.version))
        self._wakeup.ring()

    def changed(self, queue_id: str, row: QueueRow | None) -> None:
        """A client changed (or deleted, `row` None) a task; act on it if held here."""
        held = self._held.get(queue_id)
        if held is None:
            if row is not None and self._due_soon(row):
                self._wakeup.claim()
            return
        if held.recording:
            return  # the outcome being written carries the old version and will not apply
        if held.task is not None:
            if row is None or row.version != held.row.version:
                held.task.cancel()
            return
        self.settle(held, row)

    def settle(self, held: Held, row: QueueRow | None) -> None:
        """After a change: hold `row` again if it is due soon, else drop it and free its lease.

        Only for the entry `held` still in place: an older attempt's late news never
        replaces what a newer change already decided."""
        queue_id = held.row.id
        if self._held.get(queue_id) is not held:
            return
        if row is not None and self._due_soon(row):
            self.hold(row.due, None)
            return
        del self._held[queue_id]
        self._setbacks.pop(queue_id, None)
        if row is not None:
            store, holder = self._holder.store, self._holder.id
            release = self._background.persist(lambda: store.release(holder, queue_id))
            self._background.spawn(release, "release-lease")

    def forget(self, held: Held) -> None:
        """Stop holding `held` (its outcome is written, or it is given up), unless a newer
        entry replaced it already."""
        held.recording = False
        if self._held.get(held.row.id) is held:
            del self._held[held.row.id]

    def clear_setback(self, queue_id: str) -> None:
        """An outcome is written: earlier failures here before sending no longer count."""
        self._setbacks.pop(queue_id, None)

    def set_back(self, held: Held) -> None:
        """An attempt failed here before its request was sent: release the task without
        spending a retry, and run it here no sooner than a doubling pause from now."""
        times = self._setbacks.get(held.row.id, (0, 0))[0] + 1
        base, cap = SETBACK_MS
        self._setbacks[held.row.id] = (times, self._holder.clock() + min(cap, base << (times - 1)))
        self._drop(held)

    def _drop(self, held: Held) -> None:
        """Stop holding a task this process will not run now, and give it up: its open
        attempt ends INTERRUPTED and its lease goes, once the database takes the write."""
        queue_id = held.row.id
        self.forget(held)
        abandon = self._background.persist(lambda: self.abandon(queue_id))
        self._background.spawn(abandon, f"abandon-{queue_id}")

    def abandon(self, queue_id: str) -> Awaitable[None]:
        """Give up a task held here: its open attempt ends INTERRUPTED, its lease goes."""
        holder = self._holder
        return holder.store.abandon(holder=holder.id, queue_id=queue_id, now=holder.clock())
