"""Slots for attempts: at most `MAX_IN_FLIGHT` at once here, and a share of them per owner.

An owner at its share waits its turn without blocking the others: its due entries are parked
and come back to the heap one at a time, as its attempts end.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from tasks_server.scheduler.held import Entry, Holdings, Wakeup

MAX_IN_FLIGHT = 1_000  # concurrent attempts; the rest wait their turn in the heap


class Slots:
    def __init__(self, holdings: Holdings, wakeup: Wakeup, *, per_owner: int) -> None:
        self._holdings = holdings
        self._wakeup = wakeup
        self._per_owner = per_owner
        self.in_flight = 0
        self._owner_in_flight: dict[str, int] = defaultdict(int)
        # Due entries of owners at their in-flight share, back in the heap when one returns.
        self._parked: dict[str, list[Entry]] = defaultdict(list)

    def free(self) -> bool:
        return self.in_flight < MAX_IN_FLIGHT

    def parked(self, owner: str, entry: Entry) -> bool:
        """Park `entry` if `owner` has its share in flight; its turn comes when one ends."""
        if self._owner_in_flight.get(owner, 0) < self._per_owner:
            return False
        heapq.heappush(self._parked[owner], entry)
        return True

    def started(self, owner: str) -> None:
        self.in_flight += 1
        self._owner_in_flight[owner] += 1

    def ended(self, owner: str) -> None:
        self.in_flight -= 1
        self._owner_in_flight[owner] -= 1
        if not self._owner_in_flight[owner]:
            del self._owner_in_flight[owner]
        # One slot is free: the owner's earliest parked task takes it (one, not all of
        # them: with thousands parked, returning all on each end costs O(n) per attempt).
        parked = self._parked.get(owner)
        while parked:
            entry = heapq.heappop(parked)
            if self._holdings.current(entry) is not None:
                self._holdings.push(entry)
                break
        if not parked:
            self._parked.pop(owner, None)
        self._wakeup.ring()
