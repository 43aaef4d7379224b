"""What people see: rich tables of the server's objects (``--json`` bypasses all of this)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

RESPONSE_PREVIEW_CHARS = 400

console = Console(highlight=False, soft_wrap=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def when(epoch_ms: Any) -> str:
    """Epoch ms as UTC time; 0 (not yet) as a dash."""
    if not isinstance(epoch_ms, int) or epoch_ms <= 0:
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def decoded(response: Any) -> str:
    """A base64 response as text when it is UTF-8, else its size; cut for the terminal."""
    if response is None:
        return "-"
    try:
        raw = base64.b64decode(response, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return str(response)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(raw)} bytes, not text>"
    if len(text) > RESPONSE_PREVIEW_CHARS:
        return text[:RESPONSE_PREVIEW_CHARS] + f"… ({len(raw)} bytes)"
    return text


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def queues(rows: Iterable[dict[str, Any]]) -> None:
    table = Table("id", "state", "status", "created", "next attempt", "ended", box=None)
    for row in rows:
        table.add_row(
            row["id"],
            row["state"],
            str(row["statusCode"]),
            when(row["createdAt"]),
            when(row["estimateExecutionAt"]) if row["state"] == "RUNNING" else "-",
            when(row["estimateEndAt"]),
        )
    console.print(table)


def queue(item: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("id", item["id"])
    table.add_row("state", item["state"])
    table.add_row("status code", str(item["statusCode"]))
    table.add_row("created", when(item["createdAt"]))
    table.add_row("next attempt", when(item["estimateExecutionAt"]))
    table.add_row("ended", when(item["estimateEndAt"]))
    if item.get("scheduleId"):
        table.add_row("schedule", item["scheduleId"])
    for key, value in (item.get("metadata") or {}).items():
        table.add_row(f"metadata.{key}", _text(value))
    table.add_row("response", decoded(item.get("response")))
    console.print(table)


def attempt_line(attempt: dict[str, Any]) -> str:
    """One attempt in one line, as `watch` prints them."""
    error = f" {attempt['error']}" if attempt.get("error") else ""
    return (
        f"attempt {attempt['attempt']}: {attempt['outcome']} {attempt['statusCode']}"
        f" late {attempt['latenessMs']} ms, took {attempt['durationMs']} ms{error}"
    )


def attempts(rows: Iterable[dict[str, Any]]) -> None:
    table = Table("#", "outcome", "status", "due", "late ms", "took ms", "error", box=None)
    for row in rows:
        table.add_row(
            str(row["attempt"]),
            row["outcome"],
            str(row["statusCode"]),
            when(row["dueAt"]),
            _text(row["latenessMs"]),
            _text(row["durationMs"]),
            _text(row["error"]),
        )
    console.print(table)


def owner(created: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("owner id", created["id"])
    table.add_row("key", created["key"])
    table.add_row("signing secret", created.get("signingSecret") or "-")
    console.print(table)
    console.print("The key and signing secret are shown once: keep them.")
