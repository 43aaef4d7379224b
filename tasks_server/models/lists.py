"""Lists that tell tasks apart (SPEC §19.4): what a row shows of a task's request, and the
filters of ``GET /v1/queues``.

What rows show is kept in plain columns so a page of summaries never opens a sealed request:
the method, the URL with its userinfo and query values redacted as ``/config`` shows them,
the destination failures are counted by (a circuit's address), and the labels.
"""

from __future__ import annotations

from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, model_validator

from tasks_server import destinations
from tasks_server.models.attempts import MAX_OFFSET, AttemptOutcome
from tasks_server.models.labels import LabelFilter, split_filter, stored_labels
from tasks_server.models.queues import SECRET, HttpRequest, ListQuery, redact_url
from tasks_server.store.base import ListFilters, Listing


def listing(request: HttpRequest, labels: dict[str, str] | None) -> Listing:
    """The plain columns of a task sending `request`, labelled `labels`."""
    url = request.url
    if request.query:
        joined = "&".join(f"{name}={SECRET}" for name in request.query)
        url += ("&" if urlsplit(url).query else "?") + joined
    return Listing(
        labels=stored_labels(labels),
        method=request.method,
        target=redact_url(url),
        destination=destinations.address(request.url),
    )


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class FilteredListQuery(ListQuery):
    """``GET /v1/queues`` with the filters of SPEC §19.4, all of which must hold."""

    label: list[LabelFilter] = Field(
        [], max_length=16, description="key:value; repeat it for tasks carrying every pair"
    )
    outcome: Annotated[AttemptOutcome | None, BeforeValidator(_upper)] = Field(
        None, description="Only tasks whose last finished attempt ended so"
    )
    status_code: int | None = Field(
        None, alias="statusCode", ge=0, le=999, description="Only tasks with this statusCode"
    )
    created_from: int | None = Field(
        None, alias="createdFrom", ge=0, le=MAX_OFFSET, description="Created at or after (ms)"
    )
    created_to: int | None = Field(
        None, alias="createdTo", ge=0, le=MAX_OFFSET, description="Created at or before (ms)"
    )

    @classmethod
    def of(cls, params: Any) -> FilteredListQuery:
        """From a request's query parameters (`label` may repeat)."""
        query = dict(params)
        if "label" in query:
            query["label"] = params.getlist("label")
        return cls.model_validate(query)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if None not in (self.created_from, self.created_to):
            assert self.created_from is not None and self.created_to is not None
            if self.created_from > self.created_to:
                raise ValueError("createdFrom is after createdTo")
        return self

    def filters(self) -> ListFilters:
        return ListFilters(
            state=self.state.value if self.state else None,
            schedule_id=self.schedule_id,
            batch_id=self.batch_id,
            status_code=self.status_code,
            outcome=self.outcome.value if self.outcome else None,
            created_from=self.created_from,
            created_to=self.created_to,
            labels=tuple(split_filter(text) for text in self.label),
        )
