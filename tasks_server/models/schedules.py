"""Recurring schedules (SPEC §11.1): registration, the schedule object and the list query."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from tasks_server.cron import Cron
from tasks_server.models.attempts import MAX_OFFSET
from tasks_server.models.labels import Labels
from tasks_server.models.queues import MAX_DELAY_MS, HttpRequest, Metadata, QueueConfig
from tasks_server.timeutil import time_zone

# Timing of a one-shot task: a schedule's fire times replace them.
ONE_SHOT_FIELDS = ("executionDelay", "executeAt", "executeImmediately", "retryAt", "timeoutAt")


class ScheduleState(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class ScheduleRegistration(BaseModel):
    """The body of ``POST /v1/schedules``, and what is stored for a schedule."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True)

    cron: str = Field(
        description="5 fields, 6 with seconds first, or @hourly, @daily, @weekly, @monthly",
        examples=["*/5 * * * *"],
    )
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in")
    http_request: HttpRequest = Field(description="The request each fire time sends")
    config: QueueConfig = Field(
        default_factory=QueueConfig,
        description="As a task's config, without executionDelay, executeAt, "
        "executeImmediately, retryAt and timeoutAt",
    )
    metadata: Metadata | None = Field(None, description="Given to every task it registers")
    missed_runs: Literal["one", "skip", "all"] = Field(
        "one",
        description='Fire times missed while no server ran: "one" catch-up task (default), '
        '"skip" them, or "all" of those within catchUpWindow, each a task due now',
    )
    catch_up_window: int = Field(
        3_600_000,
        ge=1,
        le=MAX_DELAY_MS,
        description='With missedRuns "all": how far back (ms) missed fire times are caught up',
    )
    overlap: Literal["allow", "skip"] = Field(
        "allow",
        description='"skip": no fire while the task of the last fire is unfinished (the fire '
        'time is skipped and counted); "allow" (default): fire regardless',
    )
    labels: Labels | None = Field(
        None,
        description="Searchable pairs copied to every task it fires, in plain text (NOT encrypted)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_one_shot_timing(cls, data: Any) -> Any:
        config = data.get("config") if isinstance(data, dict) else None
        if isinstance(config, dict):
            for name in ONE_SHOT_FIELDS:
                if name in config:
                    raise ValueError(f"config.{name} has no meaning for a schedule")
        return data

    @field_validator("cron")
    @classmethod
    def _fires(cls, value: str) -> str:
        Cron(value)  # whether it ever fires does not depend on the zone
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        time_zone(value)
        return value

    def document(self) -> dict[str, Any]:
        """The stored form, as a client could send it back (merge patches apply to it)."""
        document = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        config = document.get("config", {})
        for name in ONE_SHOT_FIELDS:
            config.pop(name, None)
        return document


def task_document(schedule: dict[str, Any]) -> dict[str, Any]:
    """What each fire registers, as a task registration document (metadata aside)."""
    return {"httpRequest": schedule["httpRequest"], "config": schedule.get("config", {})}


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ScheduleOut(_Out):
    id: str = Field(description="Schedule id (a ULID)")
    state: ScheduleState = Field(description="ACTIVE fires; PAUSED does not")
    cron: str = Field(description="The cron expression")
    timezone: str = Field(description="Its IANA time zone")
    created_at: int = Field(description="Creation time (epoch ms)")
    next_run_at: int = Field(description="The next fire time (epoch ms); 0 while paused")
    last_run_at: int = Field(description="The last fire time that registered a task; 0: none")
    last_queue_id: str | None = Field(description="The task registered by the last fire")
    metadata: dict[str, str] | None = Field(description="The schedule's metadata")
    labels: dict[str, str] | None = Field(
        None, description="Its labels (plain text, not encrypted), copied to every task it fires"
    )
    method: str | None = Field(None, description="The method each fire sends")
    target: str | None = Field(
        None, description="The URL each fire sends to, its userinfo and query values shown as ***"
    )


class ScheduleConfigOut(_Out):
    """``GET /v1/schedules/{id}/config``: what each fire registers, secrets redacted."""

    http_request: dict[str, Any] = Field(
        description="The stored httpRequest, every secret shown as ***"
    )
    config: dict[str, Any] = Field(
        description="The stored config with its defaults, every secret shown as ***"
    )
    metadata: dict[str, str] | None = Field(None, description="The metadata, or null")
    missed_runs: str = Field("one", description="one, skip or all: see the registration")
    catch_up_window: int = Field(3_600_000, description="ms, with missedRuns all")
    overlap: str = Field("allow", description="allow or skip: see the registration")


class ScheduleListQuery(BaseModel):
    """Query parameters of ``GET /v1/schedules``."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=1000, description="At most this many schedules")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Skip this many, oldest first")
