"""The `Idempotency-Key` header of task registration, and what identifies "the same body"."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from starlette.requests import Request

from tasks_server.api.errors import ApiError

_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def key(request: Request) -> str | None:
    """The header's value: 1 to 255 visible ASCII characters (400 otherwise); None if absent."""
    value = request.headers.get("idempotency-key")
    if value is not None and _KEY.fullmatch(value) is None:
        raise ApiError(400, "Idempotency-Key must be 1 to 255 visible ASCII characters")
    return value


def body_digest(document: Any) -> bytes:
    """Equal for equal JSON documents, whatever their key order or spacing."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()
