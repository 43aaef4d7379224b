"""Shapes shared by every route."""

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(BaseModel):
    """Every error response: what the client should do, and what went wrong."""

    action: str = Field(description="What the client should do, e.g. not retry unchanged")
    message: str | list[dict[str, object]] | dict[str, object] = Field(
        description="What went wrong; for 400, a list of {path, message}, one per problem"
    )


class Done(BaseModel):
    status: str = Field("Done", description='Always "Done"')
