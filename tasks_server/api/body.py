"""Reading JSON request bodies within ``MAX_SIZE_BODY_REQUEST``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from tasks_server.api.errors import ApiError
from tasks_server.httpserver import ANSWERED

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer


async def read_json(request: Request, limit: int, *, required: bool = True) -> Any:
    """The parsed body; 413 as soon as more than `limit` bytes arrive, 400 when not JSON.

    An empty body is None when the body is optional (`required` False). A client that leaves
    mid-body, or is cut off by the server (a stalled body's 408), is no server error: the
    request ends with 499, or the status the server sent, which nobody reads but metrics count.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413)
            chunks.append(chunk)
    except ClientDisconnect:
        status = request.scope.get(ANSWERED, CLIENT_CLOSED_REQUEST)
        log.info(
            "request body incomplete",
            extra={
                "action": "body_incomplete",
                "status": status,
                "method": request.method,
                "path": request.scope["path"],
            },
        )
        raise ApiError(status) from None
    body = b"".join(chunks)
    if not body and not required:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Malformed JSON body: {exc}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
