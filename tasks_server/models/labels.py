"""Labels (SPEC §19.4): the searchable ``{key: value}`` pairs of a task or schedule.

Labels are stored in plain text, NOT encrypted (unlike the request, metadata and response):
lists filter on them, so they must never hold a secret.
"""

from __future__ import annotations

import re
from typing import Annotated

import orjson
from pydantic import AfterValidator, Field, StringConstraints

MAX_LABELS = 16
LABEL_KEY_PATTERN = r"^[A-Za-z0-9_.\-/]{1,64}$"
MAX_LABEL_VALUE = 256
# Printable text: no control character (a value is shown in terminals and pages as is).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("a label value may not hold control characters")
    return value


LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_VALUE), AfterValidator(_printable)
]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description=f"Up to {MAX_LABELS} searchable pairs (keys: letters, digits and _.-/, "
        f"1–64; values: 1–{MAX_LABEL_VALUE} printable characters). Stored in plain text, "
        "NOT encrypted: never put a secret in a label",
        examples=[{"env": "prod", "team": "billing"}],
    ),
]
# `GET /v1/queues?label=key:value` (repeatable): the key's own rule, then any value.
LabelFilter = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-/]{1,64}:[^\x00-\x1f\x7f]{1,256}$")
]


def stored_labels(labels: dict[str, str] | None) -> str | None:
    """The column value of `labels`: canonical JSON (keys sorted), None when there are none."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode() if labels else None


def read_labels(stored: str | None) -> dict[str, str] | None:
    labels: dict[str, str] | None = None if stored is None else orjson.loads(stored)
    return labels


def split_filter(text: str) -> tuple[str, str]:
    key, _, value = text.partition(":")
    return key, value
