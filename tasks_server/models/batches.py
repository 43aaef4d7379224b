"""Batches (SPEC §17.1): the body of ``POST /v1/queues/batch`` and what the batch routes
answer. The route reads each item's ``ref`` and validates the rest as a registration, so a
problem is named by the item's index."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from tasks_server.models.queues import REF_PATTERN, QueueOut, QueueRegistration, QueueSummary

MAX_BATCH = 1000


class BatchItem(QueueRegistration):
    ref: Annotated[str, StringConstraints(pattern=REF_PATTERN)] | None = Field(
        None,
        description="Its name in the batch (1–64 of A-Z a-z 0-9 _ -, unique): what the "
        "dependsOn of the others and placeholders call it",
    )


class BatchRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: list[BatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH} registrations, stored all or none",
    )


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class BatchOut(_Out):
    batch_id: str = Field(description="The batch's id (a ULID)")
    tasks: list[QueueOut] = Field(description="Its tasks, in the order given, each with its ref")


class Edge(_Out):
    parent: str = Field(alias="from", description="The task depended on")
    child: str = Field(alias="to", description="The task depending on it")
    require_success: bool = Field(description="Whether it must succeed")


class BatchRead(_Out):
    batch_id: str = Field(description="The batch's id")
    tasks: list[QueueSummary] = Field(description="Its tasks, in the order given")
    edges: list[Edge] = Field(description="Its dependencies")
