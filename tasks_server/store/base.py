"""What every store keeps and answers: the ``TaskStore`` protocol and its records.

The API, the scheduler, the retention job and the leaders speak only to this interface; it is
implemented once (``engine.Store``) over each engine's driver and SQL file. Times are epoch
milliseconds. Where a call compares with "now" for leases it uses the store's own clock, so
processes that share a database agree on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum, auto
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tasks_server.lifecycle import Change
    from tasks_server.schedule_lifecycle import ScheduleChange
    from tasks_server.store.imports import ImportedOwner, ImportedTask


class StoreError(Exception):
    """The database failed a call. Each engine raises it (or one of the kinds below) in place
    of its driver's error, which it keeps as ``__cause__``: nothing outside ``store/`` sees
    an engine's own exceptions."""


class StoreUnavailable(StoreError):
    """The database cannot serve now, for a reason that passes: unreachable or restarting, out
    of connections, its disk full, locked past the busy timeout. The same request may succeed
    in a moment (the API answers 503 with Retry-After). Each engine raises it in place of its
    driver's error, which it keeps as ``__cause__``."""


class StoreOpenError(StoreError):
    """`TaskStore.open` failed: the database cannot be reached, logged in to, opened or
    migrated, so the server cannot start. The message is one line naming the database (never
    a password) and why; the driver's error is its ``__cause__``."""


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    id: str
    name: str
    created_at: int
    tasks_in_queue: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """An owner's current value and, while `previous_until` lasts, the one it replaced.

    Key digests, or sealed signing secrets (`current` is None for an owner created before
    signing secrets existed).
    """

    current: bytes | None
    previous: bytes | None
    previous_until: int | None


# Runs inside the rotation's transaction: the current sealed secret (or None) in, the blobs
# to store as previous and current out.
Reseal = Callable[[bytes | None], tuple[bytes | None, bytes]]


class DeleteOutcome(Enum):
    DELETED = auto()
    NOT_FOUND = auto()
    HAS_TASKS = auto()


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: str
    owner_id: str
    state: str
    created_at: int
    status_code: int
    estimate_execution_at: int
    estimate_end_at: int
    paused_at: int | None
    retry_count: int
    retry_limit: int
    version: int
    request: bytes
    metadata: bytes | None
    response: bytes | None
    # The number of the last attempt an outcome recorded (across retries and replays; an
    # import's count): one in flight, aborted or interrupted is not in it yet.
    attempts: int
    schedule_id: str | None
    in_flight: bool  # it has an open attempt row
    callback_of: str | None = None  # a callback's task: the task whose outcome it delivers
    callback_id: str | None = None  # the task delivering this one's outcome (SPEC §11.2)
    batch_id: str | None = None
    pending_deps: int = 0  # its dependencies not finished yet (SPEC §17)
    has_dependents: bool = False
    ref: str | None = None  # its name in its batch
    labels: str | None = None  # JSON, plain (`Listing`)
    method: str | None = None
    target: str | None = None  # redacted

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> QueueRow:
        """From the columns in declaration order (`in_flight` as 0/1 or a bool)."""
        return cls(*row[:16], bool(row[16]), *row[17:26])  # type: ignore[call-arg]

    @property
    def due(self) -> Due:
        return Due(
            self.id,
            self.owner_id,
            self.estimate_execution_at,
            self.retry_count,
            self.retry_limit,
            self.version,
            self.request,
            self.has_dependents,
        )


@dataclass(frozen=True, slots=True)
class Due:
    """A RUNNING task as the scheduler holds it: no response, no metadata.

    `start_at` is the start its flow key's rate allotted at the claim (0: none); the attempt
    starts at the later of it and `estimate_execution_at`, and at least `spacing_ms` after
    the key's previous start in this process (a late start never lets the next catch up)."""

    id: str
    owner_id: str
    estimate_execution_at: int
    retry_count: int
    retry_limit: int
    version: int
    request: bytes
    has_dependents: bool = False  # its response is kept for their placeholders
    flow_key: str | None = None  # its digest, as `Flow.key`
    start_at: int = 0
    spacing_ms: int = 0

    @property
    def starts_at(self) -> int:
        return max(self.estimate_execution_at, self.start_at)


@dataclass(frozen=True, slots=True)
class Flow:
    """A task's `config.flowControl`: its owner's tasks sharing `key` have at most
    `parallelism` attempts in flight and start at most `rate` per second. `key` is the keyed
    digest of the owner's key (`KeyDigests.flow_key`): the stores never see the key itself."""

    key: str
    parallelism: int | None
    rate: float | None


def flow_columns(flow: Flow | None) -> dict[str, Any]:
    """The queue columns that hold `flow`, in table order (all None without one)."""
    if flow is None:
        return {"flow_key": None, "flow_parallelism": None, "flow_rate": None}
    return {"flow_key": flow.key, "flow_parallelism": flow.parallelism, "flow_rate": flow.rate}


@dataclass(frozen=True, slots=True)
class Listing:
    """What lists show and filter a task by (SPEC §19.4), in plain columns, never a secret:
    its labels (canonical JSON), method, redacted target and destination (scheme://host:port,
    what failures are counted by)."""

    labels: str | None = None
    method: str | None = None
    target: str | None = None
    destination: str | None = None


NO_LISTING = Listing()


def listing_columns(listing: Listing) -> dict[str, Any]:
    """The queue columns that hold `listing`, in table order."""
    return {
        "labels": listing.labels,
        "method": listing.method,
        "target": listing.target,
        "destination": listing.destination,
    }


@dataclass(frozen=True, slots=True)
class ListFilters:
    """`GET /v1/queues`'s filters; None (or no labels) filters nothing."""

    state: str | None = None
    schedule_id: str | None = None
    batch_id: str | None = None
    status_code: int | None = None
    outcome: str | None = None  # the last finished attempt's
    created_from: int | None = None
    created_to: int | None = None
    labels: tuple[tuple[str, str], ...] = ()  # every (key, value) pair, all of them


NO_FILTERS = ListFilters()


@dataclass(frozen=True, slots=True)
class QueueSummaryRow:
    id: str
    state: str
    created_at: int
    status_code: int
    estimate_execution_at: int
    estimate_end_at: int
    schedule_id: str | None
    batch_id: str | None = None
    ref: str | None = None
    method: str | None = None
    target: str | None = None
    labels: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """An owner's overview aggregates: attempts as (minute, outcome, count), lateness as
    attempts per bucket (the bounds of `stats.LATENESS_BOUNDS_MS` a start exceeded), the
    most failing destinations with their failures, and tasks by state."""

    attempts: list[tuple[int, str, int]]
    lateness: dict[int, int]
    failures: list[tuple[str, int]]
    states: dict[str, int]


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempt: int
    due_at: int
    started_at: int
    finished_at: int
    status_code: int
    outcome: str
    error: bytes | None  # sealed
    response: bytes | None  # sealed
    sent: bytes | None = None  # sealed: the request as its placeholders were filled


@dataclass(frozen=True, slots=True)
class Result:
    """How an attempt ended, as the outcome write records it (blobs already sealed)."""

    attempt: int
    outcome: str
    status_code: int
    error: bytes | None
    response: bytes | None
    finished_at: int
    state: str | None  # SUCCESS or ERROR: the task ends; None: retry at `retry_at`
    retry_at: int = 0
    attempt_status: int = 0  # the attempt row's status when not `status_code` (too large)
    sent: bytes | None = None  # sealed: the request as its placeholders were filled

    @property
    def attempt_status_code(self) -> int:
        return self.attempt_status or self.status_code


class Recorded(IntEnum):
    """What an outcome write did: true when it applied."""

    DISCARDED = 0  # the task changed meanwhile
    APPLIED = 1
    SETTLED = 2  # applied, and it ended a task with dependents, settled with it


class InsertOutcome(Enum):
    INSERTED = auto()
    LIMIT_REACHED = auto()
    NO_OWNER = auto()
    REPLAYED = auto()  # the Idempotency-Key was used with this body: the task it made
    KEY_REUSED = auto()  # the Idempotency-Key was used with another body
    UNKNOWN_DEPENDENCY = auto()  # a dependency is not one of the owner's tasks


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An `Idempotency-Key` of a registration, remembered with its body for `ttl_ms`: as the
    key's keyed digest (`KeyDigests.idempotency_key`), never the key itself."""

    key_digest: str
    body_digest: bytes
    now: int
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change refused because of the task's state (the API answers 422)."""

    message: str


# Runs inside the transaction (on the SQLite writer's thread): a pure decision, see
# tasks_server.lifecycle.
Decide = Callable[[QueueRow], "Change | Rejected"]


def change_columns(change: Change) -> dict[str, Any]:
    """The queue columns a lifecycle change sets (a flow spans three)."""
    columns = change.assigned()
    if "flow" in columns:
        flow = columns.pop("flow")
        assert flow is None or isinstance(flow, Flow)
        columns.update(flow_columns(flow))
    if "listing" in columns:
        listing = columns.pop("listing")
        assert isinstance(listing, Listing)
        columns.update(listing_columns(listing))
    return columns


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: str
    owner_id: str
    state: str
    cron: str
    timezone: str
    created_at: int
    next_run_at: int
    last_run_at: int
    last_queue_id: str | None
    version: int
    request: bytes  # sealed registration document (httpRequest, config)
    metadata: bytes | None
    labels: str | None = None  # JSON, plain: copied to the tasks it fires


# Runs inside the transaction, as `Decide`: see tasks_server.schedule_lifecycle.
ScheduleDecide = Callable[[ScheduleRow], "ScheduleChange | Rejected"]


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task a schedule's fire, an outcome's callback or a bulk `insert_many` registers
    (blobs already sealed for `queue_id`)."""

    queue_id: str
    created_at: int
    due: int
    retry_limit: int
    request: bytes
    metadata: bytes | None
    flow: Flow | None = None
    listing: Listing = NO_LISTING


def task_values(owner_id: str, task: NewTask) -> tuple[Any, ...]:
    """`task` of `owner_id` in the column order of either engine's ``INSERT_TASK``."""
    return (
        *(task.queue_id, owner_id, task.created_at, task.due, task.retry_limit),
        *(task.request, task.metadata, *flow_columns(task.flow).values()),
        *listing_columns(task.listing).values(),
    )


# A task waiting for its destination's circuit is leased to it: this, then the circuit's id.
CIRCUIT_HOLDER = "circuit:"


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """When a circuit opens (`threshold` failures in a row) and for how long (`open_ms`,
    doubled after each failed probe up to `cap_ms`)."""

    threshold: int
    open_ms: int
    cap_ms: int


@dataclass(frozen=True, slots=True)
class CircuitNote:
    """What an attempt's outcome tells its destination's circuit, written with the outcome:
    a failure (no answer, a timeout, a 5xx) or an answer. `probe`: the attempt was the one a
    half-open circuit let through."""

    id: str
    owner_id: str
    address: bytes  # sealed for the destination's id
    failed: bool
    error: bytes | None  # sealed; why it failed
    probe: bool
    policy: CircuitPolicy


@dataclass(frozen=True, slots=True)
class DestinationRow:
    """A destination's circuit: closed (`open_until` 0), open until `open_until`, or
    half-open once that passed (`probe_until`: the lease of the probe under way)."""

    id: str
    address: bytes  # sealed
    failures: int  # in a row
    open_until: int
    probe_until: int
    last_error: bytes | None  # sealed
    updated_at: int


def callback_values(owner_id: str, parent_id: str, task: NewTask) -> tuple[Any, ...]:
    """A callback's task (SPEC §11.2) in the column order of ``insert_callbacks``: inserted
    past the owner's limit, since a consequence of an accepted task must never fail."""
    return (
        *(task.queue_id, owner_id, task.created_at, task.due, task.retry_limit),
        *(task.request, task.metadata, parent_id, *listing_columns(task.listing).values()),
    )


@dataclass(frozen=True, slots=True)
class Link:
    """A dependency of a task (SPEC §17.2): the task it waits for, and the name its
    placeholders call that one (its ref in the batch, or its id)."""

    depends_on: str
    name: str
    require_success: bool = True


@dataclass(frozen=True, slots=True)
class LinkedTask:
    """A registration with dependencies (or of a batch). `task.due` is its ``executeAt`` (0
    without one); it is due `release_delay` after the moment it is released, not before."""

    task: NewTask
    links: tuple[Link, ...] = ()
    release_delay: int = 0
    ref: str | None = None


# Runs inside the registration's transaction: the (state, requireSuccess) of each of a task's
# dependencies → the state it starts in and how many of them it waits for
# (tasks_server.lifecycle.linked).
Plan = Callable[[Sequence[tuple[str, bool]]], tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Linked:
    """What `TaskStore.insert_linked` did: the outcome, the rows inserted (in order), or the
    message of a 400 (a dependency that is not the owner's task)."""

    outcome: InsertOutcome
    rows: tuple[QueueRow, ...] = ()
    unknown: str | None = None


@dataclass(frozen=True, slots=True)
class DependencyResult:
    """What a dependent's placeholders read of one of its dependencies (None: deleted)."""

    name: str
    depends_on: str
    status_code: int | None
    response: bytes | None  # sealed


@dataclass(frozen=True, slots=True)
class Overdue:
    """How many tasks are late, and the due time of the one waiting longest (None: none)."""

    count: int
    oldest_due: int | None


class FireOutcome(Enum):
    FIRED = auto()
    DUPLICATE = auto()  # that fire time already has its task
    LIMIT_REACHED = auto()  # the owner's queue is full: the fire is skipped
    STALE = auto()  # the schedule changed (or fired) since it was read
    MISSED = auto()  # a missed fire time not caught up (`missedRuns`): skipped
    OVERLAP = auto()  # the last fire's task is unfinished (`overlap: "skip"`): skipped


# Given the stored check value and one sealed task (id, request), raise when the key does not
# open this database; return a check value to record, or None.
CipherCheck = Callable[[bytes | None, tuple[str, bytes] | None], bytes | None]


class KeyDigests(Protocol):
    """Keyed digests of an owner's near-secrets, as stored (SPEC §15.7; `crypto.Cipher`)."""

    def idempotency_key(self, owner_id: str, key: str) -> str: ...

    def flow_key(self, owner_id: str, key: str) -> str: ...


class Leader(Protocol):
    """A held single-runner role (retention, backups); `release` gives it up."""

    async def held(self) -> bool:
        """Whether the role is still this process's (a database session holding it can end)."""

    def release(self) -> None: ...


# A change another process made to a task: its id and new version (None: deleted).
Notice = Callable[[str, "int | None"], None]


class TaskStore(Protocol):
    """What the engines share; what differs between them is said by capabilities (`shared`,
    `lease_ms`, `local_file`, `listen`), never asked with isinstance."""

    # Processes on other machines may use this database (PostgreSQL): leases there only ever
    # expire, and time is the database's clock.
    shared: bool
    lease_ms: int  # how long a lease outlives a holder that stopped renewing it

    @property
    def local_file(self) -> Path | None:
        """The database file when it is one this server keeps and backs up (SQLite)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise unless the database answers (SQLite: and takes a write, its disk not full)."""

    async def now(self) -> int:
        """The store's clock, epoch ms: what due times and leases are compared with."""

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        """Call `notice` for every change other processes make, and `missed()` whenever some
        may have gone unheard (a lost session is back). An engine whose processes cannot tell
        each other (SQLite) never calls either."""

    async def has_data(self) -> bool:
        """Whether any owner or task exists (a lost key then matters)."""

    async def check_cipher(self, check: CipherCheck) -> None:
        """Run `check` on the stored cipher check value in one transaction, recording the
        value it returns."""

    async def digest_plain_keys(self, digests: KeyDigests) -> int:
        """Once the cipher key is checked: replace the `Idempotency-Key` values and flow keys
        a database migrated from before SPEC §15.7 holds in plain text by their digests, in
        one transaction, once (a later call finds nothing to do); the rows changed."""

    # --- owners ---------------------------------------------------------------------------

    async def create_owner(
        self,
        *,
        owner_id: str,
        name: str,
        key_digest: bytes,
        created_at: int,
        signing_secret: bytes | None = None,
    ) -> bool:
        """Insert the owner; False when the name is taken."""

    async def key_digests(self, owner_id: str) -> Credentials | None: ...

    async def rotate_key(
        self, owner_id: str, name: str, digest: bytes, previous_until: int
    ) -> bool:
        """Make `digest` the key digest; the old one stays valid until `previous_until`."""

    async def signing_secrets(
        self, owner_id: str, missing: bytes | None = None
    ) -> Credentials | None:
        """The sealed signing secrets; `missing` is stored first when the owner has none."""

    async def rotate_signing(
        self, owner_id: str, name: str, previous_until: int, reseal: Reseal
    ) -> bool:
        """Replace the signing secret in one transaction; False when the owner is not found."""

    async def get_owner(self, owner_id: str, name: str) -> OwnerRecord | None: ...

    async def delete_owner(self, owner_id: str, name: str) -> DeleteOutcome: ...

    # --- tasks ----------------------------------------------------------------------------

    async def insert(
        self,
        *,
        queue_id: str,
        owner_id: str,
        created_at: int,
        due: int,
        retry_limit: int,
        request: bytes,
        metadata: bytes | None,
        limit: int,
        lease: tuple[str, int] | None,
        idempotency: Idempotency | None = None,
        flow: Flow | None = None,
        listing: Listing = NO_LISTING,
    ) -> tuple[InsertOutcome, QueueRow | None]:
        """Insert a RUNNING task unless the owner holds `limit` active ones (an O(1) check,
        exact under concurrency); `lease` (holder, its length in ms) pre-claims it for the
        registering process. With
        `idempotency`, a repeat of the key stores nothing (REPLAYED with the task it made,
        or KEY_REUSED), also under concurrent repeats."""

    async def insert_many(
        self, owner_id: str, tasks: Sequence[NewTask], *, limit: int
    ) -> InsertOutcome:
        """Insert RUNNING tasks of one owner in one transaction, all or none: LIMIT_REACHED
        unless the owner can hold every one of them under `limit`."""

    async def insert_linked(
        self,
        owner_id: str,
        tasks: Sequence[LinkedTask],
        *,
        plan: Plan,
        limit: int,
        batch_id: str | None,
        idempotency: Idempotency | None,
    ) -> Linked:
        """Insert `tasks` (each after those of them it depends on) with their dependencies in
        one transaction, all or none: each starts in the state `plan` gives it from its
        dependencies' states (SPEC §17). UNKNOWN_DEPENDENCY when one names a task the owner
        does not have; `Idempotency-Key` and the limit as for `insert`."""

    async def dependency_results(self, queue_id: str) -> list[DependencyResult]:
        """What a dependent's placeholders read of each of its dependencies."""

    async def links(self, queue_id: str) -> tuple[list[Link], list[str]]:
        """A task's dependencies, and the ids of the tasks depending on it."""

    async def batch(
        self, owner_id: str, batch_id: str
    ) -> tuple[list[QueueSummaryRow], list[tuple[str, str, bool]]]:
        """A batch's tasks and its edges (from, to, requireSuccess); no tasks: no such batch."""

    async def callbacks_due(self, limit: int) -> list[QueueRow]:
        """Tasks a failed dependency ended whose failureCallback is still to be queued."""

    async def queue_callbacks(self, made: Sequence[tuple[QueueRow, NewTask | None]]) -> int:
        """Queue those callbacks (None: the task has none), each once, whoever else sweeps."""

    async def get(self, owner_id: str, queue_id: str) -> QueueRow | None: ...

    async def list_tasks(
        self,
        owner_id: str,
        *,
        filters: ListFilters = NO_FILTERS,
        order: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> list[QueueSummaryRow]: ...

    async def ids_in_state(self, owner_id: str, state: str, limit: int) -> tuple[list[str], int]:
        """The owner's oldest `limit` task ids in `state`, and how many are in it in all."""

    async def change(
        self, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
    ) -> QueueRow | Rejected | None:
        """Compare-and-set: `decide(row)` (run inside the transaction) returns column changes
        or a refusal; the version is bumped. None when the owner has no such task. Making a
        finished task active again is refused when the owner holds `limit` active tasks."""

    async def delete(self, owner_id: str, queue_id: str) -> bool: ...

    async def attempts(self, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]: ...

    async def stats(self, owner_id: str, *, since: int, top: int) -> Stats:
        """The owner's aggregates of the minutes from `since` (SPEC §19.4), its `top`
        failing destinations, and its tasks by state."""

    async def purge_stats(self, *, before: int) -> int:
        """Delete the aggregates of the minutes before `before`."""

    # --- schedules ------------------------------------------------------------------------

    async def create_schedule(
        self,
        *,
        schedule_id: str,
        owner_id: str,
        cron: str,
        timezone: str,
        created_at: int,
        next_run_at: int,
        request: bytes,
        metadata: bytes | None,
        limit: int,
        labels: str | None = None,
    ) -> ScheduleRow | None:
        """Insert an ACTIVE schedule; None when the owner already has `limit` (or is unknown)."""

    async def get_schedule(self, owner_id: str, schedule_id: str) -> ScheduleRow | None: ...

    async def list_schedules(
        self, owner_id: str, *, limit: int, offset: int
    ) -> list[ScheduleRow]: ...

    async def change_schedule(
        self, owner_id: str, schedule_id: str, decide: ScheduleDecide
    ) -> ScheduleRow | Rejected | None:
        """Compare-and-set as `change`, for a schedule."""

    async def delete_schedule(self, owner_id: str, schedule_id: str) -> bool: ...

    async def due_schedules(self, *, before: int, limit: int) -> list[ScheduleRow]:
        """ACTIVE schedules whose next fire time is at or before `before`."""

    async def fire(
        self,
        schedule: ScheduleRow,
        *,
        fire_at: int,
        next_run_at: int,
        task: NewTask | None,
        limit: int,
        overlap: bool = True,
    ) -> tuple[FireOutcome, QueueRow | None]:
        """Register the task of fire time `fire_at` (at most one per schedule and fire time,
        by a unique constraint) and move the schedule to `next_run_at`, in one transaction.
        Without `task` the fire time is skipped (MISSED); without `overlap`, also while the
        task of the schedule's last fire is unfinished (OVERLAP)."""

    async def count_schedules(self) -> int:
        """ACTIVE schedules, all owners."""

    # --- the scheduler --------------------------------------------------------------------

    async def claim(self, *, holder: str, window_ms: int, lease_ms: int, limit: int) -> list[Due]:
        """Lease RUNNING tasks due within `window_ms` that nobody holds, never one whose
        attempt `holder` still has open; attempts left open by an expired holder end
        INTERRUPTED. "Now" is the store's clock.

        Tasks with a flow key are leased under the key's lock and only within its limits
        (`store.flow.plan`), so its leases, and so its attempts in flight, never exceed its
        parallelism, and its rate spaces their `start_at`."""

    async def started(self, *, holder: str, due: Due, now: int) -> int | None:
        """Open (commit) the attempt row; its number, or None when the task changed."""

    async def record(
        self,
        *,
        holder: str,
        due: Due,
        result: Result,
        keep: int,
        callback: NewTask | None = None,
        circuit: CircuitNote | None = None,
    ) -> Recorded:
        """Close the attempt and write the task's outcome in one transaction, keeping at most
        `keep` attempt rows; DISCARDED when the task changed meanwhile, SETTLED when it ended
        with dependents (settled in the same transaction). With `callback`, an
        ending outcome that applies also inserts that task in the same transaction: RUNNING,
        of the same owner, past the owner's queue limit, with `callback_of` the task's id
        (and the task's `callback_id` the callback's). With `circuit`, the destination's
        circuit counts the attempt in the same transaction (whether the outcome applies or
        not: the destination answered, or did not, all the same)."""

    async def aborted(
        self, *, holder: str, queue_id: str, now: int, started: int | None
    ) -> QueueRow | None:
        """Close `holder`'s attempt started at `started` as ABORTED if it was opened; the
        task as it is now. Only that attempt: a newer one may be running already."""

    async def abandon(self, *, holder: str, queue_id: str, now: int) -> None:
        """Give a task up after a failed write: open attempt INTERRUPTED, lease released."""

    async def reload(self, queue_id: str) -> QueueRow | None: ...

    async def leased_versions(self, holder: str) -> dict[str, tuple[str, int]]:
        """State and version of every task `holder` leases (to catch up with changes)."""

    async def renew(self, holder: str, ids: list[str], lease_ms: int) -> None:
        """Extend the leases of exactly these tasks, if `holder` still holds them."""

    async def release(self, holder: str, queue_id: str) -> None: ...

    async def release_holder(self, holder: str, *, now: int) -> None:
        """A stopping holder: its open attempts end INTERRUPTED, its leases go."""

    async def release_all(self) -> None:
        """At the start of a process alone on its database: every lease is stale."""

    # --- import from the original (SPEC §19.1) ---------------------------------------------

    async def owner_name(self, owner_id: str) -> str | None:
        """The name of the owner with this id (None: no such owner)."""

    async def import_owner(self, owner: ImportedOwner) -> bool:
        """Insert an owner of the original with its key hash; False when its id or name is
        taken."""

    async def import_tasks(self, new: Sequence[ImportedTask]) -> list[str]:
        """Insert tasks as they were, in one transaction; the ids stored (taken ids are
        left as they are)."""

    async def original_key(self, owner_id: str) -> str | None:
        """The original's argon2 hash of the owner's key, until its first use replaced it."""

    async def adopt_key(self, owner_id: str, key_hash: str, digest: bytes) -> bool:
        """Replace `key_hash` by the digest of the key it verified (False: already done)."""

    # --- destinations' circuits (SPEC §18.1) -------------------------------------------

    async def circuits(self) -> dict[str, int]:
        """Every circuit not closed, all owners: its id and the time it is open until (past:
        half-open)."""

    async def circuit(self, destination_id: str) -> int:
        """When the destination's circuit is open until (past: half-open); 0: closed."""

    async def take_probe(self, destination_id: str, *, now: int, until: int) -> int | None:
        """Make this attempt the probe of a half-open circuit, leased until `until`: None when
        it is (or the circuit closed meanwhile), else the time to wait until."""

    async def hold(self, *, holder: str, queue_id: str, destination_id: str, until: int) -> None:
        """Lease the task `holder` holds to its destination's circuit until `until`: it is not
        claimed before, spends no attempt, and keeps its due time."""

    async def destinations(self, owner_id: str, *, limit: int, offset: int) -> list[DestinationRow]:
        """The owner's destinations that have a circuit (an attempt to them failed), the
        latest changed first."""

    async def reset_destination(
        self, owner_id: str, destination_id: str, *, now: int
    ) -> DestinationRow | None:
        """Close the circuit and free the tasks waiting for it; None when not the owner's."""

    async def count_open_circuits(self) -> int:
        """Circuits open or half-open, all owners."""

    async def purge_idle_destinations(self, *, before: int, batch: int) -> int:
        """Delete up to `batch` closed circuits unchanged since before `before`."""

    # --- jobs and metrics -----------------------------------------------------------------

    async def purge_finished(self, *, before: int, batch: int) -> int: ...

    async def purge_idle_flows(self, *, before: int, batch: int) -> int:
        """Delete up to `batch` flow-control keys whose next start is before `before`: a
        key's row only keeps that start, and a claim makes the row again when needed."""

    async def leader(self, name: str) -> Leader | None:
        """Take the single-runner role `name` without waiting; None when another holds it."""

    async def count_by_state(self) -> dict[str, int]: ...

    async def overdue(self, *, now: int, late_by: int) -> Overdue:
        """The RUNNING tasks due more than `late_by` ms before `now` that have not started."""

    async def active_counts(self) -> dict[str, tuple[int, int]]:
        """Per owner: the kept active-task counter and a full recount (they must agree)."""


def limit_message(limit: int) -> str:
    """Why a registration or replay is refused when the owner is full (422)."""
    return f"Queue limit reached: at most {limit} tasks RUNNING or PAUSED per owner"
