"""Attempts of a task (SPEC §9.2): how each ended, and the listing's rows."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from tasks_server.models.queues import QueueState


class AttemptOutcome(StrEnum):
    IN_FLIGHT = "IN_FLIGHT"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"  # the target answered 4xx/5xx
    TIMEOUT = "TIMEOUT"
    TOO_LARGE = "TOO_LARGE"
    TRANSPORT = "TRANSPORT"  # no answer: refused, DNS, TLS, the destination guard
    ABORTED = "ABORTED"  # pause, revoke, delete or edit while in flight
    INTERRUPTED = "INTERRUPTED"  # its process died; closed when the task was claimed again
    EXPIRED = "EXPIRED"  # not started within config.maxLateness of its due time: never sent
    UNFILLED = "UNFILLED"  # a placeholder could not be filled: nothing was sent (SPEC §17.3)


MAX_OFFSET = 2**63 - 1  # what SQLite's integers hold
MAX_BULK = 1000


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AttemptOut(_Out):
    """One attempt of a task, oldest first in ``GET /v1/queues/{id}/attempts``."""

    attempt: int = Field(description="1 for the first attempt; numbering continues on replay")
    due_at: int = Field(description="When the attempt was due (epoch ms)")
    started_at: int = Field(description="When it started (epoch ms)")
    finished_at: int = Field(description="When it ended (epoch ms); 0 while in flight")
    lateness_ms: int = Field(description="startedAt minus dueAt")
    duration_ms: int = Field(description="finishedAt minus startedAt; 0 while in flight")
    status_code: int = Field(description="HTTP status of the answer; 0 when none")
    outcome: AttemptOutcome = Field(description="How the attempt ended")
    error: str | None = Field(description="Why no answer came (libcurl's text), or null")
    response: str | None = Field(description="Base64 of the answer's body, or null")
    sent: dict[str, Any] | None = Field(
        None,
        description="For a task with placeholders: the url, headers and data as they were "
        "filled and sent (secrets shown as ***); null otherwise",
    )


class AttemptsQuery(BaseModel):
    """Query parameters of ``GET /v1/queues/{id}/attempts`` (strings in, types coerced)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=1000, description="At most this many attempts (1–1000)")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Skip this many attempts first")


class Replay(BaseModel):
    """Body of ``POST /v1/queues/{id}/replay`` (optional)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True)

    execution_delay: int = Field(
        0, ge=0, le=315_360_000_000, description="ms from now until the replayed task is due"
    )


class BulkAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    REVOKE = "revoke"
    REPLAY = "replay"
    DELETE = "delete"


class Bulk(BaseModel):
    """Body of ``POST /v1/queues/bulk``: the tasks by id, or the oldest in one state."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction = Field(description="What to do with each task")
    ids: list[str] | None = Field(
        None, min_length=1, max_length=MAX_BULK, description="Queue ids (at most 1000)"
    )
    state: QueueState | None = Field(
        None, description="Instead of ids: the owner's oldest 1000 tasks in this state"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if (self.ids is None) == (self.state is None):
            raise ValueError("give either ids or state")
        return self


class Refusal(_Out):
    id: str = Field(description="Queue id")
    message: str = Field(description="Why the action does not apply to this task")


class BulkOut(_Out):
    done: list[str] = Field(description="Tasks the action was applied to")
    refused: list[Refusal] = Field(description="Tasks whose state forbids the action")
    not_found: list[str] = Field(description="Ids that are not this owner's tasks")
    remaining: int = Field(description="Tasks still in the state after this call (state form)")
