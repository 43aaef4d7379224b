import logging
import sys

import orjson

from tasks_server.logs import JsonFormatter, LineFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "tasks_server.x", "levelname": "WARNING", "msg": "attempt %s", "args": ("failed",)}
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_ts_level_event_and_fields() -> None:
    line = JsonFormatter("UTC").format(_record(action="failure", status_code=503))
    assert "\n" not in line
    record = orjson.loads(line)
    assert record["ts"].endswith("+00:00") and record["level"] == "WARNING"
    assert record["event"] == "attempt failed" and record["logger"] == "tasks_server.x"
    assert record["action"] == "failure" and record["status_code"] == 503


def test_json_keeps_a_traceback_and_odd_values_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(where=object())
        record.exc_info = sys.exc_info()
    parsed = orjson.loads(JsonFormatter("UTC").format(record))
    assert "ValueError: boom" in parsed["exception"]
    assert parsed["where"].startswith("<object")


def test_text_lines_unchanged() -> None:
    line = LineFormatter("UTC").format(_record(action="failure"))
    assert line.endswith(" WARNING tasks_server.x: attempt failed action=failure")
