"""What people see: the server's objects as tables and lines, its JSON for scripts.

Everything printed comes from the server (or a URL someone typed), so it is text, never
instructions (SPEC §15.9): table cells are `Text`, which Rich never parses for markup or emoji,
and `literal` writes out every control character a terminal would act on.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

RESPONSE_PREVIEW_CHARS = 400

console = Console(highlight=False, soft_wrap=False, markup=False, emoji=False)

# C0 (ESC starts CSI and OSC sequences), DEL and C1 (U+009B is a one-character CSI).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline stay


def literal(text: str, *, layout: bool = False, json: bool = False) -> str:
    """`text` with each control character written out, so a terminal shows it, never obeys it.

    `\\x1b` by default; `\\u001b` with `json`, which keeps JSON valid and its value unchanged.
    Tab and newline stay only with `layout` or `json` (a body printed whole).
    """
    controls = _CONTROLS_BUT_LAYOUT if layout or json else _CONTROLS
    form = "\\u{:04x}" if json else "\\x{:02x}"
    return controls.sub(lambda match: form.format(ord(match[0])), text)


def echo(text: str, *, err: bool = False) -> None:
    """One line of text that may hold server data."""
    typer.echo(literal(text), err=err)


def print_json(text: str) -> None:
    """The server's JSON body as it sent it, control characters escaped the JSON way."""
    typer.echo(literal(text, json=True))


def when(epoch_ms: Any, *, short: bool = False, year: int | None = None) -> str:
    """Epoch ms as UTC time (to the second when short, for list rows, and without the year
    when it is `year`, this one by default); 0 (not yet) as a dash."""
    if not isinstance(epoch_ms, int) or epoch_ms <= 0:
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    if short:
        this_year = moment.year == (year or datetime.now(UTC).year)
        return moment.strftime("%m-%d %H:%M:%S" if this_year else "%Y-%m-%d %H:%M:%S")
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


def _cell(value: Any, *, layout: bool = False) -> Text:
    """A table cell: a `Text`, as a `str` cell would be parsed as Rich markup."""
    return Text(literal("-" if value is None else str(value), layout=layout))


def _row(table: Table, *values: Any) -> None:
    table.add_row(*(value if isinstance(value, Text) else _cell(value) for value in values))


def queues(rows: list[dict[str, Any]]) -> None:
    """One line per task, within 80 columns: ids are never cut, they are what people copy."""
    if not rows:
        echo("no tasks")
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=26)
    for name in ("state", "status", "created (UTC)", "due / ended"):
        table.add_column(name, no_wrap=True)
    for name in ("request", "labels"):  # what tells tasks apart: folded, never cut
        table.add_column(name, overflow="fold")
    for row in rows:
        running = row["state"] == "RUNNING"
        request = " ".join(part for part in (row.get("method"), row.get("target")) if part)
        _row(
            table,
            row["id"],
            row["state"],
            row["statusCode"],
            when(row["createdAt"], short=True),
            when(row["estimateExecutionAt" if running else "estimateEndAt"], short=True),
            request or "-",
            " ".join(f"{k}={v}" for k, v in (row.get("labels") or {}).items()) or "-",
        )
    console.print(table)


def batch(made: dict[str, Any]) -> None:
    echo(f"batch {made['batchId']}")
    queues(made["tasks"])


def bulk(answer: dict[str, Any]) -> None:
    """How many were done, then each refusal and unknown id on its own line."""
    echo(f"{len(answer['done'])} done, {len(answer['refused'])} refused")
    for refusal in answer["refused"]:
        echo(f"{refusal['id']} refused: {refusal['message']}")
    for queue_id in answer["notFound"]:
        echo(f"{queue_id} not found")
    if answer.get("remaining"):
        echo(f"{answer['remaining']} more in that state: run it again")


def stats(overview: dict[str, Any]) -> None:
    """The window's totals: attempts by outcome, lateness, failing destinations, states."""
    totals: dict[str, int] = {}
    for minute in overview["attemptsPerMinute"]:
        for outcome, count in minute["outcomes"].items():
            totals[outcome] = totals.get(outcome, 0) + count
    late = overview["lateness"]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    _row(table, "window", f"{overview['window']} from {when(overview['from'])}")
    _row(table, "attempts", " ".join(f"{k}={v}" for k, v in sorted(totals.items())) or "none")
    _row(table, "lateness", f"p50 ≤ {late['p50Ms']} ms, p99 ≤ {late['p99Ms']} ms")
    for top in overview["topFailingDestinations"]:
        _row(table, "failing", f"{top['destination']} ({top['failures']})")
    states = overview["states"]
    _row(table, "tasks", " ".join(f"{k}={v}" for k, v in sorted(states.items())) or "none")
    console.print(table)


def queue(item: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    _row(table, "id", item["id"])
    _row(table, "state", item["state"])
    _row(table, "status code", item["statusCode"])
    _row(table, "created", when(item["createdAt"]))
    _row(table, "next attempt", when(item["estimateExecutionAt"]))
    _row(table, "ended", when(item["estimateEndAt"]))
    for label, key in (
        ("schedule", "scheduleId"),
        ("batch", "batchId"),
        ("ref", "ref"),
        ("callback task", "callbackQueueId"),
        ("callback of", "callbackOf"),
    ):
        if item.get(key):
            _row(table, label, item[key])
    for dependency in item.get("dependencies") or ():
        required = "" if dependency["requireSuccess"] else " (success not required)"
        _row(table, "waits for", f"{dependency['id']}{required}")
    if item.get("dependents"):
        _row(table, "waited for by", " ".join(item["dependents"]))
    _metadata(table, item)
    _row(table, "response", _cell(decoded(item.get("response")), layout=True))
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
        echo("no attempts yet")
        return
    table = Table("#", "outcome", "status", "due", "late ms", "took ms", "error", box=None)
    for row in rows:
        _row(
            table,
            row["attempt"],
            row["outcome"],
            row["statusCode"],
            when(row["dueAt"]),
            row["latenessMs"],
            row["durationMs"],
            row["error"],
        )
    console.print(table)


def owner(created: dict[str, Any]) -> None:
    """Plain lines, never wrapped: the key is meant to be copied whole."""
    echo(f"owner id:       {created['id']}")
    echo(f"key:            {created['key']}")
    echo(f"signing secret: {created.get('signingSecret') or '-'}")
    echo("The key and signing secret are shown once: keep them.")


def schedules(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("no schedules")
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=26)
    for name in ("state", "cron", "next run (UTC)", "last run"):
        table.add_column(name, no_wrap=name != "cron")
    for row in rows:
        _row(
            table,
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
    _row(table, "id", item["id"])
    _row(table, "state", item["state"])
    _row(table, "cron", item["cron"])
    _row(table, "timezone", item["timezone"])
    _row(table, "created", when(item["createdAt"]))
    _row(table, "next run", when(item["nextRunAt"]))
    _row(table, "last run", when(item["lastRunAt"]))
    _row(table, "last task", item.get("lastQueueId"))
    _metadata(table, item)
    console.print(table)


def destinations(rows: list[dict[str, Any]]) -> None:
    """One block per destination: its id alone fills most of 80 columns."""
    if not rows:
        echo("no destinations with failures")
        return
    for number, row in enumerate(rows):
        if number:
            echo("")
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        _row(table, "id", row["id"])
        _row(table, "destination", f"{row['scheme']}://{row['host']}:{row['port']}")
        _row(table, "state", row["state"])
        _row(table, "failures", str(row["consecutiveFailures"]))
        _row(table, "open until", when(row["openUntil"]))
        _row(table, "last error", row["lastError"] or "-")
        console.print(table)


def _metadata(table: Table, item: dict[str, Any]) -> None:
    for key, value in (item.get("metadata") or {}).items():
        _row(table, f"metadata.{key}", value)
