"""Turns due rows into attempts and attempts' outcomes back into rows.

The database schedules; memory only caches. This process leases the RUNNING tasks due soon,
holds them until their time, runs each attempt and records its outcome; a lease passes to
another process only once expired, so a task never runs twice at once, also with several
processes on one database, and a crash loses nothing. The work is split in parts, each
owning its state and reached only through its methods:

- `producer`: claiming, the heap, per-owner fairness (`slots`), flow-control turns;
- `runner`: one attempt, from its start written to its request answered;
- `completer`: the outcome written, retries, callbacks;
- `maintenance`: lease renewal, reconciling with other processes, change notices;
- `held`: the tasks held here and what a client's change does to them;
- `background`: tracked tasks, and writes retried through outages;
- `facade`: `Scheduler`, what the app and the API call, and the order of shutdown.
"""

from tasks_server.scheduler.facade import Scheduler
from tasks_server.scheduler.maintenance import LEASE_MS

__all__ = ["LEASE_MS", "Scheduler"]
