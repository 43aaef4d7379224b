"""Log configuration: one line per event, time in LOG_TZ, structured fields appended."""

from __future__ import annotations

import logging
import sys
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


class LineFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678+00:00 INFO logger: message key=value ...`"""

    def __init__(self, tz: str) -> None:
        super().__init__()
        self.zone = ZoneInfo(tz)

    def format(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {key}={value}" for key, value in _fields(record).items())
        line = f"{self._when(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line += fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
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
