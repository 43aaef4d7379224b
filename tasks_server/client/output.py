"""What people see: rich tables of the server's objects (``--json`` bypasses all of this)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

RESPONSE_PREVIEW_CHARS = 400

console = Console(highlight=False, soft_wrap=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def when(epoch_ms: Any, *, short: bool = False) -> str:
    """Epoch ms as UTC time (to the second when short, for list rows); 0 (not yet) as a dash."""
    if not isinstance(epoch_ms, int) or epoch_ms <= 0:
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    if short:
        return moment.strftime("%m-%d %H:%M:%S")
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


def queues(rows: list[dict[str, Any]]) -> None:
    """One line per task, within 80 columns: ids are never cut, they are what people copy."""
    if not rows:
        console.print("no tasks")
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=26)
    for name in ("state", "status", "created (UTC)", "due / ended"):
        table.add_column(name, no_wrap=True)
    for row in rows:
        running = row["state"] == "RUNNING"
        table.add_row(
            row["id"],
            row["state"],
            str(row["statusCode"]),
            when(row["createdAt"], short=True),
            when(row["estimateExecutionAt" if running else "estimateEndAt"], short=True),
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
    for label, key in (
        ("schedule", "scheduleId"),
        ("callback task", "callbackQueueId"),
        ("callback of", "callbackOf"),
    ):
        if item.get(key):
            table.add_row(label, item[key])
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


def attempts(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no attempts yet")
        return
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
    """Plain lines, never wrapped: the key is meant to be copied whole."""
    console.print(f"owner id:       {created['id']}", markup=False, soft_wrap=True)
    console.print(f"key:            {created['key']}", markup=False, soft_wrap=True)
    secret = created.get("signingSecret") or "-"
    console.print(f"signing secret: {secret}", markup=False, soft_wrap=True)
    console.print("The key and signing secret are shown once: keep them.")


def schedules(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no schedules")
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=26)
    for name in ("state", "cron", "next run (UTC)", "last run"):
        table.add_column(name, no_wrap=name != "cron")
    for row in rows:
        table.add_row(
            row["id"],
            row["state"],
            f"{row['cron']} {row['timezone']}" if row["timezone"] != "UTC" else row["cron"],
            when(row["nextRunAt"], short=True),
            when(row["lastRunAt"], short=True),
        )
    console.print(table)


def schedule(item: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("id", item["id"])
    table.add_row("state", item["state"])
    table.add_row("cron", item["cron"])
    table.add_row("timezone", item["timezone"])
    table.add_row("created", when(item["createdAt"]))
    table.add_row("next run", when(item["nextRunAt"]))
    table.add_row("last run", when(item["lastRunAt"]))
    table.add_row("last task", _text(item.get("lastQueueId")))
    for key, value in (item.get("metadata") or {}).items():
        table.add_row(f"metadata.{key}", _text(value))
    console.print(table)
