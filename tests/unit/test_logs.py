import logging
import re
import sys

import orjson
import pytest

from tasks_server.logs import JsonFormatter, LineFormatter

# A target's certificate CN as libcurl quotes it in its error text.
FORGED_CN = "evil\nlevel=CRITICAL msg=forged"
TLS_ERROR = f"SSL: certificate subject name '{FORGED_CN}' does not match target hostname 'x'"
LINE_START = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (INFO|WARNING|ERROR|CRITICAL) ")


def _record(
    msg: str = "attempt %s", args: tuple[object, ...] = ("failed",), **extra: object
) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "tasks_server.x", "levelname": "WARNING", "msg": msg, "args": args}
    )
    record.__dict__.update(extra)
    return record


def _text(record: logging.LogRecord) -> str:
    return LineFormatter("UTC").format(record)


def _raw(line: str, key: str) -> str:
    found = re.search(rf' {key}=("(?:[^"\\]|\\.)*"|\S*)', line)
    assert found, line
    return found.group(1)


def _value(line: str, key: str) -> str:
    """A field's value as a logfmt reader gets it: bare, or a quoted JSON-escaped string."""
    raw = _raw(line, key)
    return str(orjson.loads(raw)) if raw.startswith('"') else raw


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


def test_text_lines_keep_their_layout_and_bare_simple_values() -> None:
    line = _text(_record("attempt finished", (), action="failure", status_code=503))
    assert line.endswith(" WARNING tasks_server.x: attempt finished action=failure status_code=503")
    assert LINE_START.match(line)


def test_a_forged_cn_in_a_field_stays_on_its_line() -> None:
    line = _text(_record("attempt finished", (), action="failure", error=TLS_ERROR, attempt=1))
    assert line.splitlines() == [line]
    assert "\nlevel=CRITICAL" not in line
    assert _value(line, "error") == TLS_ERROR
    assert _value(line, "attempt") == "1"  # the field after it is still its own


def test_a_forged_cn_in_the_message_stays_on_its_line() -> None:
    line = _text(_record("attempt failed: %s", (TLS_ERROR,), action="failure"))
    assert line.splitlines() == [line]
    message = line.split(" tasks_server.x: ", 1)[1].rsplit(" action=", 1)[0]
    assert orjson.loads(message) == f"attempt failed: {TLS_ERROR}"
    assert _value(line, "action") == "failure"


@pytest.mark.parametrize(
    "hostile",
    [
        "a\rb",  # CR: a terminal returns to the line start and overwrites it
        "a\x1b[2K\x1b[1Gb",  # ESC: erase the line, move the cursor
        "a\x00b",
        "a\x7fb",  # DEL
        "a\x85b",  # NEL, a line break for str.splitlines
        "a\x9b2Kb",  # C1 CSI
        "a\u2028b\u2029c",  # Unicode line and paragraph separators
        "a\x0bb\x0cc\x1cd\x1de\x1ef",  # vertical tab, form feed, file/group/record separators
        'say "hi"',
        "key=value",
        "a b",
        "back\\slash \\n",
        "",
    ],
)
def test_every_hostile_value_is_quoted_escaped_and_read_back(hostile: str) -> None:
    for record in (
        _record("attempt finished", (), url=hostile, status_code=1),
        _record("fetched %s", (hostile,), status_code=1),
    ):
        line = _text(record)
        assert line.splitlines() == [line] and line.isprintable(), ascii(line)
        assert _value(line, "status_code") == "1"
    line = _text(_record("x", (), url=hostile, n=1))
    assert _raw(line, "url").startswith('"') and _value(line, "url") == hostile


def test_a_traceback_cannot_start_a_line_either() -> None:
    try:
        raise ValueError(TLS_ERROR + "\r\x1b[2K")
    except ValueError:
        record = _record("attempt failed unexpectedly", (), queue_id="01Q")
        record.exc_info = sys.exc_info()
    first, *trace = _text(record).split("\n")
    assert first.endswith("attempt failed unexpectedly queue_id=01Q")
    assert trace[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") and line.isprintable() for line in trace), trace
    assert any("level=CRITICAL" in line for line in trace)  # kept, but indented
