"""Log configuration: one line per event, time in LOG_TZ, structured fields appended.

Values come from outside (a target's TLS error text, a URL, a path), so the text format
writes them as logfmt does: bare when safe, else quoted with JSON escapes, so that no value
can end its line, start a forged one or send a terminal control sequence (SPEC §15.6).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from tasks_server.settings import LogFormat, Settings

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# C0, DEL, C1 and the Unicode line and paragraph separators: what ends a line or drives a
# terminal. Escaped as JSON does, so a logfmt reader (go-logfmt unquotes as JSON) gets them back.
_CONTROLS = {
    code: f"\\u{code:04x}" for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_ESCAPES = _CONTROLS | {ord('"'): '\\"', ord("\\"): "\\\\"}
_QUOTED = re.compile(r'[\s"=\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _logfmt(value: object) -> str:
    """`value` as a logfmt value: bare, or quoted when empty or holding a space, quote, `=`
    or control character, with those escaped."""
    text = str(value)
    if text and not _QUOTED.search(text):
        return text
    return f'"{text.translate(_ESCAPES)}"'


class LineFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678+00:00 INFO logger: message key=value ...`

    A message that carries data (formatting arguments, or a control character) is a logfmt
    value too; a traceback follows on lines indented by two spaces, its control characters
    escaped, so only a record starts a line.
    """

    def __init__(self, tz: str) -> None:
        super().__init__()
        self.zone = ZoneInfo(tz)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.args or not message.isprintable():
            message = _logfmt(message)
        fields = "".join(f" {key}={_logfmt(value)}" for key, value in _fields(record).items())
        line = f"{self._when(record)} {record.levelname} {record.name}: {message}{fields}"
        if record.exc_info:
            trace = self.formatException(record.exc_info).split("\n")
            line += "".join(f"\n  {part.translate(_CONTROLS)}" for part in trace)
        return line

    def _when(self, record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, self.zone).isoformat(timespec="milliseconds")


class JsonFormatter(LineFormatter):
    """One JSON object per line: `ts`, `level`, `logger`, `event`, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._when(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured `extra` fields a call passed."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def configure(*, enabled: bool, tz: str, json: bool = False) -> None:
    """LOG=0 keeps warnings and errors only; `json` writes LOG_FORMAT=json lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(tz) if json else LineFormatter(tz))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if enabled else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def configure_from(settings: Settings) -> None:
    configure(
        enabled=settings.log,
        tz=settings.log_tz or settings.tz,
        json=settings.log_format is LogFormat.JSON,
    )


class OutageLog:
    """Logs a failure that comes back every turn of a loop (the database being away) once
    when it starts and once per ``period_s`` while it lasts, with how many were held back,
    instead of a traceback per turn."""

    def __init__(self, logger: logging.Logger, message: str, *, period_s: float = 10.0) -> None:
        self._logger = logger
        self._message = message
        self._period_s = period_s
        self._logged_at = float("-inf")
        self._held_back = 0

    def failed(self, exc: BaseException, **extra: Any) -> None:
        now = time.monotonic()
        if now - self._logged_at < self._period_s:
            self._held_back += 1
            return
        fields = {**extra, "error": str(exc), "held_back": self._held_back}
        self._logger.warning(self._message, extra=fields)
        self._logged_at, self._held_back = now, 0
