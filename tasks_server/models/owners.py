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

    name: OwnerName = Field(
        description="5–32 lowercase letters, digits and single hyphens; not starting with a "
        "digit or hyphen, not ending with a hyphen"
    )


_KEY = "The bearer key (64 letters and digits), shown once: send it as Authorization: Bearer"
_SIGNING_SECRET = "The secret that signs outgoing requests (Standard Webhooks), shown once"


class OwnerRegistered(StrictModel):
    id: str = Field(description="The owner id (a ULID): send it as X-Tasks-Owner-Id")
    key: str = Field(description=_KEY)
    signing_secret: str = Field(alias="signingSecret", description=_SIGNING_SECRET)


class OwnerKey(StrictModel):
    key: str = Field(description=_KEY)


class OwnerSigningSecret(StrictModel):
    signing_secret: str = Field(alias="signingSecret", description=_SIGNING_SECRET)


class OwnerOut(StrictModel):
    id: str = Field(description="The owner id (a ULID)")
    name: str = Field(description="The owner name")
    created_at: int = Field(alias="createdAt", description="When it was registered (epoch ms)")
    tasks_in_queue: int = Field(alias="tasksInQueue", description="Its tasks now RUNNING or PAUSED")
    tasks_in_queue_limit: int = Field(
        alias="tasksInQueueLimit",
        description="At most this many RUNNING or PAUSED (MAX_TASKS_IN_QUEUE)",
    )
