"""Owner registration and owner records."""

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from tasks_server.models.common import StrictModel

OWNER_NAME_PATTERN = r"^(?![0-9-])(?!.*--)[a-z0-9-]{5,32}(?<!-)$"

OwnerName = Annotated[str, StringConstraints(pattern=OWNER_NAME_PATTERN)]


class OwnerRegister(StrictModel):
    model_config = ConfigDict(regex_engine="python-re")  # the pattern needs look-arounds

    name: OwnerName


class OwnerRegistered(StrictModel):
    id: str
    key: str


class OwnerOut(StrictModel):
    id: str
    name: str
    created_at: int = Field(alias="createdAt")
    tasks_in_queue: int = Field(alias="tasksInQueue")
    tasks_in_queue_limit: int = Field(alias="tasksInQueueLimit")
