"""Destinations and their circuits as the API shows them (SPEC §18.1)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks_server.models.attempts import MAX_OFFSET

DESTINATION_ID_PATTERN = r"^[0-9a-f]{32}$"  # a keyed digest, hex


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class DestinationOut(BaseModel):
    """One destination of the owner: scheme, host and port, and its circuit."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    id: str = Field(description="The destination id (a keyed digest of owner and address)")
    scheme: str = Field(description="http or https")
    host: str = Field(description="The host, as in the URLs of its tasks (lower case)")
    port: int = Field(description="The port (80 or 443 when the URLs give none)")
    state: CircuitState = Field(
        description="closed: attempts go; open: its tasks wait, spending no retries, until "
        "openUntil; half-open: one probe attempt decides"
    )
    consecutive_failures: int = Field(
        description="Failed attempts in a row (no answer, timeout, 5xx); an answer resets it"
    )
    open_until: int = Field(
        description="When the circuit lets a probe through (epoch ms); 0: closed"
    )
    last_error: str | None = Field(description="Why the last failed attempt failed, or null")
    updated_at: int = Field(description="When an attempt or a reset last changed it (epoch ms)")


class DestinationListQuery(BaseModel):
    """Query parameters of ``GET /v1/destinations``."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=1000, description="At most this many destinations")
    offset: int = Field(
        0, ge=0, le=MAX_OFFSET, description="Skip this many, the latest changed first"
    )
