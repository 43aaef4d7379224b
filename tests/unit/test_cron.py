"""Fire times across daylight-saving changes (SPEC §11.1): a local time that does not exist
fires at the end of the gap, an ambiguous one fires once (its first occurrence)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks_server.cron import Cron, CronError


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def utc(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fires(cron: Cron, after: str, count: int) -> list[str]:
    out, at = [], ms(after)
    for _ in range(count):
        at = cron.next_after(at)
        out.append(utc(at))
    return out


# (expression, zone, start (UTC), expected fire times in UTC)
DST_TABLE = [
    # Paris, spring forward on 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC).
    (
        "30 2 * * *",
        "Europe/Paris",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),  # 02:30 does not exist: gap end
    (
        "0 * * * *",
        "Europe/Paris",
        "2026-03-28T23:30:00+00:00",
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
    ),
    (
        "*/20 2 * * *",
        "Europe/Paris",
        "2026-03-28T23:30:00+00:00",
        ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"],
    ),  # three gap times, one fire
    # Paris, fall back on 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC).
    (
        "30 2 * * *",
        "Europe/Paris",
        "2026-10-24T12:00:00+00:00",
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ),  # 02:30 twice: fires once (CEST)
    (
        "0 * * * *",
        "Europe/Paris",
        "2026-10-24T23:30:00+00:00",
        ["2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"],
    ),
    # New York, spring forward on 2026-03-08 (02:00 EST -> 03:00 EDT, 07:00 UTC) and fall
    # back on 2026-11-01 (02:00 EDT -> 01:00 EST, 06:00 UTC).
    (
        "15 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00+00:00",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00+00:00",
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    ),  # 01:30 twice: fires once (EDT)
    # An ordinary day, a seconds field, a macro.
    (
        "0 9 * * 1-5",
        "Europe/Paris",
        "2026-06-05T12:00:00+00:00",
        ["2026-06-08T07:00:00Z", "2026-06-09T07:00:00Z"],
    ),
    (
        "*/2 * * * * *",
        "UTC",
        "2026-06-05T12:00:00+00:00",
        ["2026-06-05T12:00:02Z", "2026-06-05T12:00:04Z"],
    ),
    (
        "@hourly",
        "UTC",
        "2026-06-05T12:00:00+00:00",
        ["2026-06-05T13:00:00Z", "2026-06-05T14:00:00Z"],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "start", "expected"), DST_TABLE)
def test_fire_times(expression: str, zone: str, start: str, expected: list[str]) -> None:
    assert fires(Cron(expression, zone), start, len(expected)) == expected


def test_fire_time_is_strictly_after() -> None:
    cron = Cron("0 * * * *")
    assert utc(cron.next_after(ms("2026-06-05T12:00:00+00:00"))) == "2026-06-05T13:00:00Z"


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("61 * * * *", "UTC"),
        ("* * *", "UTC"),
        ("* * * * * * *", "UTC"),
        ("@often", "UTC"),
        ("0 * * * *", "Mars/Olympus"),
        ("", "UTC"),
        ("0 0 31 2 *", "UTC"),  # parses, but no date matches: it never fires
        ("0 0 30 2 *", "Europe/Paris"),
        ("0 0 31 4,6,9,11 *", "UTC"),
        ("0 0 0 30 2 *", "UTC"),  # with seconds
        ("0 0 30 2 mon#5", "UTC"),  # an nth weekday narrows the day: still never
        ("0 * * * *", "America"),  # a folder of the tz database, not a zone
        ("0 * * * *", "America/"),
        ("0 * * * *", "x" * 256),
        ("0 * * * *", "Europe/" + "x" * 300),
        ("0 * * * *", "../../etc/passwd"),
        ("0 * * * *", "/etc/localtime"),
        ("0 * * * *", "zone.tab"),  # a data file beside the zones
        ("0 * * * *", " UTC"),
    ],
)
def test_invalid_expressions_and_zones(expression: str, zone: str) -> None:
    with pytest.raises(CronError):
        Cron(expression, zone)


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 0 31 4 *"])
def test_a_cron_that_never_fires_says_so(expression: str) -> None:
    with pytest.raises(CronError, match="never fires"):
        Cron(expression)


@pytest.mark.parametrize("zone", ["America", "x" * 256, "Europe/"])
def test_a_zone_that_is_not_one_says_so(zone: str) -> None:
    with pytest.raises(CronError, match="not an IANA time zone"):
        Cron("0 * * * *", zone)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("0 0 29 2 *", "2026-06-01T00:00:00+00:00", "2028-02-29T00:00:00Z"),
        # Day of month or day of week: the 31st never comes in February, Mondays do.
        ("0 0 31 2 1", "2026-06-01T00:00:00+00:00", "2027-02-01T00:00:00Z"),
        # A fifth Monday in February: only a leap year starting the month on a Monday.
        ("0 0 * 2 1#5", "2026-06-01T00:00:00+00:00", "2044-02-29T00:00:00Z"),
        ("0 0 29 2 1#5", "2044-03-01T00:00:00+00:00", "2072-02-29T00:00:00Z"),
    ],
)
def test_rare_crons_are_kept(expression: str, start: str, expected: str) -> None:
    assert fires(Cron(expression), start, 1) == [expected]


def test_seconds_last_is_the_backup_dialect() -> None:
    cron = Cron("* * * * * */2", seconds_first=False)
    assert fires(cron, "2026-06-05T12:00:00+00:00", 2) == [
        "2026-06-05T12:00:02Z",
        "2026-06-05T12:00:04Z",
    ]
    with pytest.raises(CronError, match="never fires"):
        Cron("0 0 31 2 * 0", seconds_first=False)
    with pytest.raises(CronError, match="6 with seconds last"):
        Cron("0 0 1 1 * 0 2020", seconds_first=False)
