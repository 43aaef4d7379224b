"""Fires recurring schedules (SPEC §11.1): each fire time registers one task.

Every process runs the loop; only the holder of the store's "schedules" leader role fires,
and even two firing at once register one task per fire time (the store's unique constraint).
A task is registered `LEAD_MS` before its fire time, due at that time, so the scheduler holds
it before it is due. Fire times missed while no server ran are caught up as the schedule's
`missedRuns` says (`schedule_lifecycle.plan_fire`): one catch-up task due now (the default),
none, or one per missed time within `catchUpWindow`. With `overlap: "skip"` a fire time whose
schedule's last task is unfinished is skipped. A fire that finds the owner's queue full is
skipped, logged and counted, as is every skipped fire time. A traced schedule's tasks keep
each a child of its trace context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

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
from tasks_server.schedule_lifecycle import Fire, plan_fire
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
BATCH_FIRES = 200  # fire times one schedule catches up per turn
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
        """Fire the schedule's due fire times (several when `missedRuns` is "all")."""
        cron = Cron(schedule.cron, schedule.timezone)
        document = self._codec.open_json(schedule.request, schedule.id, REQUEST)
        reg = QueueRegistration.model_validate(
            task_document(document), context={"check_future": False}
        )
        traceparent = document.get(tracing.STORED)
        fired = 0
        for _ in range(BATCH_FIRES):
            fire = plan_fire(
                cron,
                schedule.next_run_at,
                now,
                missed_runs=document.get("missedRuns", "one"),
                catch_up_window=document.get("catchUpWindow", 0),
            )
            overlap = document.get("overlap")
            outcome = await self._fire_one(schedule, reg, fire, now, overlap, traceparent)
            fired += outcome is FireOutcome.FIRED
            # Only a fired or skipped time moves the schedule on as read here.
            if outcome not in (FireOutcome.FIRED, FireOutcome.MISSED):
                break
            schedule = replace(schedule, next_run_at=fire.next_run_at)
            if fire.next_run_at > now + LEAD_MS:
                break
        return fired

    async def _fire_one(
        self,
        schedule: ScheduleRow,
        reg: QueueRegistration,
        fire: Fire,
        now: int,
        overlap: str | None,
        traceparent: str | None,
    ) -> FireOutcome:
        fire_at = schedule.next_run_at
        task = None
        if fire.due is not None:
            task = self._new_task(schedule, reg, fire.due, now, traceparent)
        outcome, row = await self._store.fire(
            schedule,
            fire_at=fire_at,
            next_run_at=fire.next_run_at,
            task=task,
            limit=self._queue_limit,
            overlap=overlap != "skip",
        )
        label = outcome.name.lower()
        self._metrics.schedule_fires.labels(outcome=label).inc()
        fields = {"action": f"schedule_{label}", "schedule_id": schedule.id, "fire_at": fire_at}
        if outcome is FireOutcome.LIMIT_REACHED:
            log.warning("schedule fire skipped: the owner's queue is full", extra=fields)
        elif outcome in (FireOutcome.MISSED, FireOutcome.OVERLAP):
            log.info("schedule fire time skipped", extra=fields)
        elif outcome is FireOutcome.FIRED and row is not None and task is not None:
            log.info("schedule fired", extra={**fields, "queue_id": task.queue_id})
            self._registered(task.queue_id, row)
        return outcome

    def _new_task(
        self,
        schedule: ScheduleRow,
        reg: QueueRegistration,
        due: int,
        now: int,
        traceparent: str | None,
    ) -> NewTask:
        queue_id = str(ULID())
        if traceparent is not None:
            reg.traced(tracing.child(traceparent))  # each fire's task: a child of the schedule's
        metadata = None
        if schedule.metadata is not None:
            plain = self._codec.open(schedule.metadata, schedule.id, METADATA)
            metadata = self._codec.seal(plain, queue_id, "metadata")
        return NewTask(
            queue_id=queue_id,
            created_at=now,
            due=due,
            retry_limit=reg.config.retry,
            request=self._codec.seal_request(reg, queue_id),
            metadata=metadata,
            flow=self._codec.flow(reg, schedule.owner_id),
            listing=listing(reg.http_request, read_labels(schedule.labels)),
        )
