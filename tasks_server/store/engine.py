"""``TaskStore``, written once over a `Driver`: every engine is this class with its driver."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tasks_server.store import (
    destinations,
    imports,
    leases,
    meta,
    owners,
    schedules,
    stats,
    tasks,
    upkeep,
    workflows,
)
from tasks_server.store.base import (
    AttemptRow,
    CipherCheck,
    Credentials,
    Decide,
    DeleteOutcome,
    DependencyResult,
    DestinationRow,
    Due,
    FireOutcome,
    Idempotency,
    InsertOutcome,
    KeyDigests,
    Leader,
    Link,
    Linked,
    LinkedTask,
    NewTask,
    Notice,
    Overdue,
    OwnerRecord,
    Plan,
    QueueRow,
    QueueSummaryRow,
    Recorded,
    Rejected,
    Reseal,
    ScheduleDecide,
    ScheduleRow,
    Stats,
    StoreError,
    StoreOpenError,
    StoreUnavailable,
)
from tasks_server.store.driver import Driver
from tasks_server.store.imports import ImportedOwner, ImportedTask


class Store:
    """The store; what differs between engines is its driver's (capabilities included)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.shared = driver.shared
        self.lease_ms = driver.lease_ms

    @property
    def local_file(self) -> Path | None:
        return self.driver.local_file

    async def open(self) -> None:
        await self.driver.open()

    async def close(self) -> None:
        await self.driver.close()

    async def ping(self) -> None:
        await self.driver.ping()

    async def now(self) -> int:
        return await self.driver.now()

    async def listen(self, notice: Notice, missed: Callable[[], None]) -> None:
        await self.driver.listen(notice, missed)

    async def leader(self, name: str) -> Leader | None:
        return await self.driver.leader(name)

    # The start-up checks: a database failing them cannot be started on (StoreOpenError).

    async def has_data(self) -> bool:
        with _starting():
            return await meta.has_data(self.driver)

    async def check_cipher(self, check: CipherCheck) -> None:
        with _starting():
            await meta.check_cipher(self.driver, check)

    async def digest_plain_keys(self, digests: KeyDigests) -> int:
        with _starting():
            return await meta.digest_plain_keys(self.driver, digests)

    # --- owners ---------------------------------------------------------------------------

    async def create_owner(self, **fields: Any) -> bool:
        return await owners.create(self.driver, **fields)

    async def key_digests(self, owner_id: str) -> Credentials | None:
        return await owners.key_digests(self.driver, owner_id)

    async def rotate_key(
        self, owner_id: str, name: str, digest: bytes, previous_until: int
    ) -> bool:
        return await owners.rotate_key(self.driver, owner_id, name, digest, previous_until)

    async def signing_secrets(
        self, owner_id: str, missing: bytes | None = None
    ) -> Credentials | None:
        return await owners.signing_secrets(self.driver, owner_id, missing)

    async def rotate_signing(
        self, owner_id: str, name: str, previous_until: int, reseal: Reseal
    ) -> bool:
        return await owners.rotate_signing(self.driver, owner_id, name, previous_until, reseal)

    async def get_owner(self, owner_id: str, name: str) -> OwnerRecord | None:
        return await owners.get(self.driver, owner_id, name)

    async def delete_owner(self, owner_id: str, name: str) -> DeleteOutcome:
        return await owners.delete(self.driver, owner_id, name)

    # --- tasks ----------------------------------------------------------------------------

    async def insert(self, **fields: Any) -> tuple[InsertOutcome, QueueRow | None]:
        return await tasks.insert(self.driver, **fields)

    async def insert_many(
        self, owner_id: str, new: Sequence[NewTask], *, limit: int
    ) -> InsertOutcome:
        return await tasks.insert_many(self.driver, owner_id, new, limit=limit)

    async def insert_linked(
        self,
        owner_id: str,
        new: Sequence[LinkedTask],
        *,
        plan: Plan,
        limit: int,
        batch_id: str | None,
        idempotency: Idempotency | None,
    ) -> Linked:
        return await workflows.insert_linked(
            self.driver,
            owner_id,
            new,
            plan=plan,
            limit=limit,
            batch_id=batch_id,
            idempotency=idempotency,
        )

    async def dependency_results(self, queue_id: str) -> list[DependencyResult]:
        return await workflows.results(self.driver, queue_id)

    async def links(self, queue_id: str) -> tuple[list[Link], list[str]]:
        return await workflows.links(self.driver, queue_id)

    async def batch(
        self, owner_id: str, batch_id: str
    ) -> tuple[list[QueueSummaryRow], list[tuple[str, str, bool]]]:
        return await workflows.batch(self.driver, owner_id, batch_id)

    async def callbacks_due(self, limit: int) -> list[QueueRow]:
        return await workflows.callbacks_due(self.driver, limit)

    async def queue_callbacks(self, made: Sequence[tuple[QueueRow, NewTask | None]]) -> int:
        return await workflows.queue_callbacks(self.driver, made)

    async def get(self, owner_id: str, queue_id: str) -> QueueRow | None:
        return await tasks.get(self.driver, owner_id, queue_id)

    async def list_tasks(self, owner_id: str, **query: Any) -> list[QueueSummaryRow]:
        return await tasks.list_for_owner(self.driver, owner_id, **query)

    async def ids_in_state(self, owner_id: str, state: str, limit: int) -> tuple[list[str], int]:
        return await tasks.ids_in_state(self.driver, owner_id, state, limit)

    async def change(
        self, owner_id: str, queue_id: str, decide: Decide, *, limit: int | None = None
    ) -> QueueRow | Rejected | None:
        return await tasks.change(self.driver, owner_id, queue_id, decide, limit=limit)

    async def delete(self, owner_id: str, queue_id: str) -> bool:
        return await tasks.delete(self.driver, owner_id, queue_id)

    async def attempts(self, queue_id: str, *, limit: int, offset: int) -> list[AttemptRow]:
        return await tasks.attempts(self.driver, queue_id, limit=limit, offset=offset)

    async def reload(self, queue_id: str) -> QueueRow | None:
        return await tasks.reload(self.driver, queue_id)

    async def stats(self, owner_id: str, *, since: int, top: int) -> Stats:
        return await stats.read(self.driver, owner_id, since=since, top=top)

    async def purge_stats(self, *, before: int) -> int:
        return await stats.purge(self.driver, before=before)

    # --- schedules ------------------------------------------------------------------------

    async def create_schedule(self, **fields: Any) -> ScheduleRow | None:
        return await schedules.create(self.driver, **fields)

    async def get_schedule(self, owner_id: str, schedule_id: str) -> ScheduleRow | None:
        return await schedules.get(self.driver, owner_id, schedule_id)

    async def list_schedules(self, owner_id: str, *, limit: int, offset: int) -> list[ScheduleRow]:
        return await schedules.list_for_owner(self.driver, owner_id, limit=limit, offset=offset)

    async def change_schedule(
        self, owner_id: str, schedule_id: str, decide: ScheduleDecide
    ) -> ScheduleRow | Rejected | None:
        return await schedules.change(self.driver, owner_id, schedule_id, decide)

    async def delete_schedule(self, owner_id: str, schedule_id: str) -> bool:
        return await schedules.delete(self.driver, owner_id, schedule_id)

    async def due_schedules(self, *, before: int, limit: int) -> list[ScheduleRow]:
        return await schedules.due(self.driver, before=before, limit=limit)

    async def fire(
        self, schedule: ScheduleRow, **fields: Any
    ) -> tuple[FireOutcome, QueueRow | None]:
        return await schedules.fire(self.driver, schedule, **fields)

    async def count_schedules(self) -> int:
        return await schedules.count_active(self.driver)

    # --- the scheduler --------------------------------------------------------------------

    async def claim(self, **fields: Any) -> list[Due]:
        return await leases.claim(self.driver, **fields)

    async def started(self, *, holder: str, due: Due, now: int) -> int | None:
        return await leases.started(self.driver, holder=holder, due=due, now=now)

    async def record(self, **fields: Any) -> Recorded:
        return await leases.record(self.driver, **fields)

    async def aborted(self, **fields: Any) -> QueueRow | None:
        return await leases.aborted(self.driver, **fields)

    async def abandon(self, *, holder: str, queue_id: str, now: int) -> None:
        await leases.abandon(self.driver, holder=holder, queue_id=queue_id, now=now)

    async def leased_versions(self, holder: str) -> dict[str, tuple[str, int]]:
        return await leases.leased_versions(self.driver, holder)

    async def renew(self, holder: str, ids: list[str], lease_ms: int) -> None:
        await leases.renew(self.driver, holder, ids, lease_ms)

    async def release(self, holder: str, queue_id: str) -> None:
        await leases.release(self.driver, holder, queue_id)

    async def release_holder(self, holder: str, *, now: int) -> None:
        await leases.release_holder(self.driver, holder, now=now)

    async def release_all(self) -> None:
        await leases.release_all(self.driver)

    # --- import from the original ---------------------------------------------------------

    async def owner_name(self, owner_id: str) -> str | None:
        return await imports.owner_name(self.driver, owner_id)

    async def import_owner(self, owner: ImportedOwner) -> bool:
        return await imports.import_owner(self.driver, owner)

    async def import_tasks(self, new: Sequence[ImportedTask]) -> list[str]:
        return await imports.import_tasks(self.driver, new)

    async def original_key(self, owner_id: str) -> str | None:
        return await imports.original_key(self.driver, owner_id)

    async def adopt_key(self, owner_id: str, key_hash: str, digest: bytes) -> bool:
        return await imports.adopt_key(self.driver, owner_id, key_hash, digest)

    # --- destinations' circuits ------------------------------------------------------------

    async def circuits(self) -> dict[str, int]:
        return await destinations.circuits(self.driver)

    async def circuit(self, destination_id: str) -> int:
        return await destinations.circuit(self.driver, destination_id)

    async def take_probe(self, destination_id: str, *, now: int, until: int) -> int | None:
        return await destinations.take_probe(self.driver, destination_id, now=now, until=until)

    async def hold(self, **fields: Any) -> None:
        await destinations.hold(self.driver, **fields)

    async def destinations(self, owner_id: str, *, limit: int, offset: int) -> list[DestinationRow]:
        return await destinations.for_owner(self.driver, owner_id, limit=limit, offset=offset)

    async def reset_destination(
        self, owner_id: str, destination_id: str, *, now: int
    ) -> DestinationRow | None:
        return await destinations.reset(self.driver, owner_id, destination_id, now=now)

    async def count_open_circuits(self) -> int:
        return await destinations.count_open(self.driver)

    async def purge_idle_destinations(self, *, before: int, batch: int) -> int:
        return await destinations.purge_idle(self.driver, before=before, batch=batch)

    # --- jobs and metrics -----------------------------------------------------------------

    async def purge_finished(self, *, before: int, batch: int) -> int:
        return await upkeep.purge_finished(self.driver, before=before, batch=batch)

    async def purge_idle_flows(self, *, before: int, batch: int) -> int:
        return await upkeep.purge_idle_flows(self.driver, before=before, batch=batch)

    async def count_by_state(self) -> dict[str, int]:
        return await upkeep.count_by_state(self.driver)

    async def overdue(self, *, now: int, late_by: int) -> Overdue:
        return await upkeep.overdue(self.driver, now=now, late_by=late_by)

    async def active_counts(self) -> dict[str, tuple[int, int]]:
        return await upkeep.active_counts(self.driver)


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    try:
        yield
    except StoreUnavailable:
        raise
    except StoreError as exc:
        raise StoreOpenError(str(exc)) from exc
