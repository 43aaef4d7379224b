"""Fires recurring schedules (SPEC §11.1): each fire time registers one task.

Every process runs the loop; only the holder of the store's "schedules" leader role fires,
and even two firing at once register one task per fire time (the store's unique constraint).
A task is registered `LEAD_MS` before its fire time, due at that time, so the scheduler holds
it before it is due. Fire times missed while no server ran give one catch-up task, due now;
the schedule then goes on from the next fire time after now. A fire that finds the owner's
queue full is skipped, logged and counted. A traced schedule's tasks keep each a child of
its trace context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ulid import ULID

from tasks_server import tracing
from tasks_server.codec import TaskCodec
from tasks_server.cron import Cron
from tasks_server.jobs import LeaderJob
from tasks_server.metrics import Metrics
from tasks_server.models.labels import read_labels
from tasks_server.models.lists import listing
from tasks_server.models.queues import QueueRegistration
from tasks_server.models.schedules import task_document
from tasks_server.store.base import (
    FireOutcome,
    NewTask,
    QueueRow,
    ScheduleRow,
    TaskStore,
)
from tasks_server.timeutil import now_ms

log = logging.getLogger(__name__)

LEAD_MS = 1_000  # register a fire's task this long before it is due
LATE_MS = 1_000  # a fire time further in the past was missed: its task is a catch-up, due now
PERIOD_S = 0.25  # how often to look for due schedules (a change here wakes it at once)
BATCH = 200

REQUEST, METADATA = "schedule-request", "schedule-metadata"


class ScheduleRunner(LeaderJob):
    name = "schedules"

    def __init__(
        self,
        store: TaskStore,
        codec: TaskCodec,
        registered: Callable[[str, QueueRow], None],
        metrics: Metrics,
        *,
        queue_limit: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(store, period_s=PERIOD_S)
        self._codec = codec
        self._registered = registered  # the scheduler's `changed`: due soon, hold it now
        self._metrics = metrics
        self._queue_limit = queue_limit
        self._clock = clock

    async def work(self) -> int:
        """Register the tasks of the fire times due within the lead; how many."""
        now = self._clock()
        fired = 0
        for schedule in await self._store.due_schedules(before=now + LEAD_MS, limit=BATCH):
            fired += await self._fire(schedule, now)
        return fired

    async def _fire(self, schedule: ScheduleRow, now: int) -> int:
        fire_at = schedule.next_run_at
        catch_up = fire_at < now - LATE_MS
        cron = Cron(schedule.cron, schedule.timezone)
        queue_id = str(ULID())
        document = self._codec.open_json(schedule.request, schedule.id, REQUEST)
        reg = QueueRegistration.model_validate(
            task_document(document), context={"check_future": False}
        )
        if (traceparent := document.get(tracing.STORED)) is not None:
            reg.traced(tracing.child(traceparent))  # each fire's task: a child of the schedule's
        metadata = None
        if schedule.metadata is not None:
            plain = self._codec.open(schedule.metadata, schedule.id, METADATA)
            metadata = self._codec.seal(plain, queue_id, "metadata")
        task = NewTask(
            queue_id=queue_id,
            created_at=now,
            due=now if catch_up else fire_at,
            retry_limit=reg.config.retry,
            request=self._codec.seal_request(reg, queue_id),
            metadata=metadata,
            flow=self._codec.flow(reg, schedule.owner_id),
            listing=listing(reg.http_request, read_labels(schedule.labels)),
        )
        outcome, row = await self._store.fire(
            schedule,
            fire_at=fire_at,
            next_run_at=cron.next_after(max(fire_at, now)),
            task=task,
            limit=self._queue_limit,
        )
        label = outcome.name.lower()
        self._metrics.schedule_fires.labels(outcome=label).inc()
        fields = {"action": f"schedule_{label}", "schedule_id": schedule.id, "fire_at": fire_at}
        if outcome is FireOutcome.LIMIT_REACHED:
            log.warning("schedule fire skipped: the owner's queue is full", extra=fields)
        elif outcome is FireOutcome.FIRED and row is not None:
            log.info("schedule fired", extra={**fields, "queue_id": queue_id})
            self._registered(queue_id, row)
            return 1
        return 0
