"""Owner registration and owner records."""

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from tasks_server.models.common import StrictModel

OWNER_NAME_PATTERN = r"^(?![0-9-])(?!.*--)[a-z0-9-]{5,32}(?<!-)$"

_OWNER_NAME = re.compile(OWNER_NAME_PATTERN)


def _whole_name(value: str) -> str:
    # Python's `$` also matches before a trailing newline: the name must match whole.
    if _OWNER_NAME.fullmatch(value) is None:
        raise ValueError(f"String should match pattern '{OWNER_NAME_PATTERN}'")
    return value


OwnerName = Annotated[
    str, StringConstraints(pattern=OWNER_NAME_PATTERN), AfterValidator(_whole_name)
]


class OwnerRegister(StrictModel):
    model_config = ConfigDict(regex_engine="python-re")  # the pattern needs look-arounds

    name: OwnerName


class OwnerRegistered(StrictModel):
    id: str
    key: str
    signing_secret: str = Field(alias="signingSecret")


class OwnerKey(StrictModel):
    key: str


class OwnerSigningSecret(StrictModel):
    signing_secret: str = Field(alias="signingSecret")


class OwnerOut(StrictModel):
    id: str
    name: str
    created_at: int = Field(alias="createdAt")
    tasks_in_queue: int = Field(alias="tasksInQueue")
    tasks_in_queue_limit: int = Field(alias="tasksInQueueLimit")
