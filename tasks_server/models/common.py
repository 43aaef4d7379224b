"""Shapes shared by every route."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(BaseModel):
    """Every error response: what the client should do, and what went wrong."""

    action: str
    message: str | list[dict[str, object]] | dict[str, object]


class Done(BaseModel):
    status: str = "Done"
