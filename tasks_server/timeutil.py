"""Wall-clock time as Unix epoch milliseconds (UTC), and parsing of user-given instants."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser
from dateutil import tz as dateutil_tz

MAX_INSTANT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime holds
_MAX_ZONE_NAME = 64  # the longest IANA zone name has 32 characters

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_FORMATS = 'epoch milliseconds, ISO 8601 or a date such as "Dec 12 2012 12:12:12 AM +07:00"'


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (``Europe/Paris``, ``UTC``), or ValueError.

    ZoneInfo reads whatever file the name points to under the tz folders: a folder
    (``America``) or an over-long name fails with OSError, a data file (``zone.tab``) or a
    path with ValueError. Every one of them is a name that is not a zone.
    """
    try:
        if len(name) <= _MAX_ZONE_NAME:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    shown = name if len(name) <= _MAX_ZONE_NAME else f"{name[:_MAX_ZONE_NAME]}..."
    raise ValueError(f"{shown!r} is not an IANA time zone such as 'Europe/Paris' or 'UTC'")


def _zone_of(name: str | None, offset: int | None) -> tzinfo | None:
    """dateutil's ``tzinfos`` hook: numeric offsets (and UTC/GMT/Z) only, never a guess."""
    if offset is not None:
        zone: tzinfo = dateutil_tz.tzoffset(name, offset)
        return zone
    if name is not None:
        # Abbreviations are ambiguous (CST, IST…); dateutil would silently drop them.
        raise ValueError(f"unknown time zone {name!r} in date: use a numeric offset like +07:00")
    return None


def parse_instant(value: int | str, tz: str) -> int:
    """Epoch ms UTC from epoch ms (an int or a string of digits) or a date string.

    A date string without a zone is read in the IANA zone `tz`; so are missing date parts
    (``"10:00"`` is today at 10:00 there). Raises ValueError on anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected {_FORMATS}")
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            value = int(text)
        else:
            zone = ZoneInfo(tz)
            today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
            try:
                parsed = parser.parse(text, default=today.replace(tzinfo=None), tzinfos=_zone_of)
            except (parser.ParserError, OverflowError):
                raise ValueError(f"{value!r} is not a date: expected {_FORMATS}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            value = (parsed - _EPOCH) // _MS
    assert isinstance(value, int)
    if not 0 <= value <= MAX_INSTANT_MS:
        raise ValueError(f"{value} is outside 1970-01-01 … 9999-12-31 (epoch milliseconds)")
    return value
