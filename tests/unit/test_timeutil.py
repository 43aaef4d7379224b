import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tasks_server.timeutil import MAX_INSTANT_MS, now_ms, parse_instant


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = now_ms()
    assert before <= value <= time.time_ns() // 1_000_000
    assert isinstance(value, int)


@pytest.mark.parametrize("value", [0, 1_700_000_000_000, MAX_INSTANT_MS])
def test_epoch_ms_int_passes_through(value: int) -> None:
    assert parse_instant(value, "UTC") == value


@pytest.mark.parametrize(("text", "expected"), [("1700000000000", 1_700_000_000_000), (" 42 ", 42)])
def test_digit_string_is_epoch_ms(text: str, expected: int) -> None:
    assert parse_instant(text, "Asia/Bangkok") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dec 12 2012 12:12:12 AM +07:00", datetime(2012, 12, 11, 17, 12, 12, tzinfo=UTC)),
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T10:00:00.250+02:00", datetime(2024, 1, 1, 8, 0, 0, 250_000, tzinfo=UTC)),
        ("2024-01-01 10:00 GMT", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999Z", datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
    ],
)
def test_date_string_with_zone(text: str, expected: datetime) -> None:
    assert parse_instant(text, "Asia/Bangkok") == ms(expected)


def test_date_string_without_zone_uses_tz() -> None:
    bangkok = ZoneInfo("Asia/Bangkok")
    assert parse_instant("2030-06-01 12:00", "Asia/Bangkok") == ms(
        datetime(2030, 6, 1, 12, tzinfo=bangkok)
    )
    assert parse_instant("2030-06-01 12:00", "UTC") == ms(datetime(2030, 6, 1, 12, tzinfo=UTC))


def test_missing_date_parts_are_today_in_tz() -> None:
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its "today" often differs from UTC's
    today = datetime.now(zone)
    expected = ms(datetime(today.year, today.month, today.day, 10, tzinfo=zone))
    assert parse_instant("10:00", "Pacific/Kiritimati") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("garbage", "is not a date"),
        ("", "is not a date"),
        ("2024-02-30", "is not a date"),
        ("Dec 12 2012 99999999999:00", "is not a date"),  # dateutil's OverflowError
        ("2024-01-01 10:00 EST", "unknown time zone 'EST'"),
        ("1969-12-31T23:59:59Z", "outside 1970-01-01"),
        ("9999-12-31T23:59:59-01:00", "outside 1970-01-01"),
        (-1, "outside 1970-01-01"),
        (MAX_INSTANT_MS + 1, "outside 1970-01-01"),
        (str(MAX_INSTANT_MS + 1), "outside 1970-01-01"),
        (True, "expected epoch milliseconds"),
        (1.5, "expected epoch milliseconds"),
        (None, "expected epoch milliseconds"),
    ],
)
def test_garbage_is_a_value_error(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_instant(value, "UTC")  # type: ignore[arg-type]
