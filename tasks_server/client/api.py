"""A small synchronous HTTP client for the routes the CLI calls.

Every call returns the server's answer untouched (`Answer`), so ``--json`` can print exactly
what the server sent; a refusal raises `Refused` carrying the server's ``message``. A URL in a
message has its userinfo replaced by ``***``: ``TASKS_URL`` may carry a password.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tasks_server import __version__

USER_AGENT = f"tasks-cli/{__version__}"
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    """A successful response: its body as sent and decoded."""

    text: str
    data: Any


class Refused(Exception):
    """The server answered 4xx/5xx; the message is its ``message`` (or "not found")."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer at all: connection refused, DNS, TLS, timeout."""


class BadUrl(ValueError):
    """The server URL cannot be parsed (a usage error, not an unreachable server)."""


def _redacted(url: httpx.URL) -> str:
    return str(url.copy_with(userinfo=b"***")) if url.userinfo else str(url)


def _segment(value: str) -> str:
    """An id typed by a person stays one path segment, whatever it contains."""
    return quote(value, safe="")


def _is_problem(problem: Any) -> bool:
    """One validation problem: ``{"path": "httpRequest.url", "message": "..."}``."""
    return isinstance(problem, dict) and all(
        isinstance(problem.get(key), str) for key in ("path", "message")
    )


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        if isinstance(message, str):
            return message
        if isinstance(message, list) and all(_is_problem(problem) for problem in message):
            return "; ".join(f"{problem['path']}: {problem['message']}" for problem in message)
        return json.dumps(message, ensure_ascii=False)
    if response.status_code == 404:
        return "not found"
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class Api:
    def __init__(
        self,
        url: str,
        *,
        owner_id: str | None = None,
        key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if owner_id is not None and key is not None:
            headers["Authorization"] = f"Bearer {key}"
            headers["X-Tasks-Owner-Id"] = owner_id
        try:
            self._http = httpx.Client(
                base_url=url.rstrip("/"), headers=headers, timeout=TIMEOUT_S, transport=transport
            )
        except httpx.InvalidURL as exc:
            raise BadUrl(f"the server URL is not valid: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        try:
            response = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {_redacted(self._http.base_url)}: {exc}") from None
        if response.status_code >= 400:
            raise Refused(response.status_code, _message(response))
        return Answer(response.text, response.json() if response.content else None)

    # --- owners ----------------------------------------------------------------------------

    def register_owner(self, name: str, *, admin_key: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else None
        return self.call("POST", "/v1/owners/register", body={"name": name}, headers=headers)

    def rotate_key(self, name: str) -> Answer:
        """A new key; the old one keeps working for the server's grace period."""
        return self.call("POST", f"/v1/owners/{_segment(name)}/key")

    def rotate_signing_secret(self, name: str) -> Answer:
        return self.call("POST", f"/v1/owners/{_segment(name)}/signing-secret")

    # --- queues ----------------------------------------------------------------------------

    def register(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> Answer:
        headers = None if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        return self.call("POST", "/v1/queues/register", body=body, headers=headers)

    def register_batch(self, body: Any, *, idempotency_key: str | None = None) -> Answer:
        headers = None if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        return self.call("POST", "/v1/queues/batch", body=body, headers=headers)

    def queues(self, query: dict[str, Any] | None = None) -> Answer:
        """A page of tasks; `query` holds the parameters of ``GET /v1/queues`` by name."""
        return self.call("GET", "/v1/queues", params=query)

    def bulk(self, body: dict[str, Any]) -> Answer:
        """``POST /v1/queues/bulk``: one action over many tasks."""
        return self.call("POST", "/v1/queues/bulk", body=body)

    def stats(self, window: str) -> Answer:
        return self.call("GET", "/v1/stats", params={"window": window})

    def get(self, queue_id: str) -> Answer:
        return self.call("GET", f"/v1/queues/{_segment(queue_id)}")

    def attempts(self, queue_id: str, *, limit: int = 100, offset: int = 0) -> Answer:
        return self.call(
            "GET",
            f"/v1/queues/{_segment(queue_id)}/attempts",
            params={"limit": limit, "offset": offset},
        )

    def act(self, action: str, queue_id: str, *, body: dict[str, Any] | None = None) -> Answer:
        """One of the single-task actions: pause, resume, revoke, execute, replay, delete."""
        method, suffix = ACTIONS[action]
        return self.call(method, f"/v1/queues/{_segment(queue_id)}{suffix}", body=body)

    # --- schedules (SPEC §11.1) ------------------------------------------------------------

    def create_schedule(self, body: dict[str, Any]) -> Answer:
        return self.call("POST", "/v1/schedules", body=body)

    def schedules(self, *, limit: int = 10, offset: int = 0) -> Answer:
        return self.call("GET", "/v1/schedules", params={"limit": limit, "offset": offset})

    def schedule(self, schedule_id: str) -> Answer:
        return self.call("GET", f"/v1/schedules/{_segment(schedule_id)}")

    def act_on_schedule(self, action: str, schedule_id: str) -> Answer:
        """pause, resume or delete."""
        method, suffix = SCHEDULE_ACTIONS[action]
        return self.call(method, f"/v1/schedules/{_segment(schedule_id)}{suffix}")

    # --- destinations (SPEC §18.1) ---------------------------------------------------------

    def destinations(self, *, limit: int = 100, offset: int = 0) -> Answer:
        return self.call("GET", "/v1/destinations", params={"limit": limit, "offset": offset})

    def reset_destination(self, destination_id: str) -> Answer:
        return self.call("POST", f"/v1/destinations/{_segment(destination_id)}/reset")


SCHEDULE_ACTIONS: dict[str, tuple[str, str]] = {
    "pause": ("PATCH", "/pause"),
    "resume": ("PATCH", "/resume"),
    "delete": ("DELETE", ""),
}

# Action → (HTTP method, path suffix) as SPEC §1 and §9.3 route them.
ACTIONS: dict[str, tuple[str, str]] = {
    "pause": ("PATCH", "/pause"),
    "resume": ("PATCH", "/resume"),
    "revoke": ("PATCH", "/revoke"),
    "execute": ("POST", "/execute"),
    "replay": ("POST", "/replay"),
    "delete": ("DELETE", ""),
}
