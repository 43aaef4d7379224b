"""Log configuration: one line per event, time in LOG_TZ, structured fields appended."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

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
        when = datetime.fromtimestamp(record.created, self.zone).isoformat(timespec="milliseconds")
        fields = "".join(
            f" {key}={value}" for key, value in record.__dict__.items() if key not in _STANDARD
        )
        line = f"{when} {record.levelname} {record.name}: {record.getMessage()}{fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(*, enabled: bool, tz: str) -> None:
    """LOG=0 keeps warnings and errors only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter(tz))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if enabled else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
