"""The one error shape, ``{"action", "message"}``, and the handlers that produce it."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_server.logs import OutageLog
from tasks_server.store.base import StoreUnavailable

log = logging.getLogger(__name__)

_FIX = "Do not retry without fixing the problem"
_DONT_REPEAT = "The request should not be repeated"
ACTIONS = {
    400: _FIX,
    401: _DONT_REPEAT,
    403: _DONT_REPEAT,
    404: _FIX,
    405: _FIX,
    409: _FIX,
    413: _FIX,
    422: _FIX,
    429: "Please wait until the server restore your connection",
    500: "Do not retry this request more than once",
    503: "Retry the request after the delay in Retry-After",
}
_MESSAGES = {
    401: "Invalid credentials",
    403: "Access denied",
    405: "Method not allowed",
    413: "Request body too large",
    429: "Too many requests",
    500: "Internal server error",
    503: "The database is unavailable",
}
RETRY_AFTER_S = 5
# An outage fails every request while it lasts: it is logged once per this interval.
UNAVAILABLE_LOG_S = 10.0


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """Raised by a route to answer with an error status and message."""

    def __init__(self, status_code: int, message: Any = None) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = _MESSAGES.get(status_code, "") if message is None else message


class NotFound(ApiError):
    """An unknown (or not owned) resource: 404 with an empty JSON object, as the original."""

    def __init__(self) -> None:
        super().__init__(404, None)


def error_response(
    status_code: int, message: Any = None, headers: dict[str, str] | None = None
) -> Response:
    if message is None:
        message = _MESSAGES.get(status_code, "")
    action = ACTIONS.get(status_code, ACTIONS[500] if status_code >= 500 else _FIX)
    return JSONResponse({"action": action, "message": message}, status_code, headers=headers)


def validation_problems(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem with its field path, e.g. ``httpRequest.url``."""
    return [
        {"path": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if isinstance(exc, NotFound):
        return JSONResponse({}, 404)
    return error_response(exc.status_code, exc.message)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return error_response(400, validation_problems(exc))


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return Response(status_code=404)
    headers = None if exc.headers is None else dict(exc.headers)
    return error_response(exc.status_code, exc.detail, headers=headers)


class OnUnavailable:
    """Answers StoreUnavailable with 503 and `Retry-After`: the request can be sent again.
    The outage is logged once and then every `UNAVAILABLE_LOG_S`, not per request."""

    def __init__(self) -> None:
        self._log = OutageLog(
            log, "database unavailable: answering 503", period_s=UNAVAILABLE_LOG_S
        )

    async def __call__(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        self._log.failed(exc, action="unavailable")
        return error_response(503, headers={"Retry-After": str(RETRY_AFTER_S)})


class RequestGuard:
    """Refuses a NUL byte in the path or query (400) and answers unhandled errors with 500.

    A NUL reaches SQLite, file and libcurl calls as a C string terminator, so it is refused
    before any route sees it. Starlette's own handler for `Exception` re-raises after
    answering, and uvicorn then closes the keep-alive connection; caught here, the client's
    next request on that connection is served.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            await error_response(400, "The path or query contains a NUL byte")(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise  # too late for an answer: uvicorn closes the connection
            log.exception(
                "unhandled error on %s %s",
                scope["method"],
                scope["path"],
                extra={"action": "error"},
            )
            await error_response(500)(scope, receive, send)
