"""Durations as people type them: ``500ms``, ``5s``, ``5m``, ``2h``, ``1d``, or ``1h30m``;
and an interval as the cron expression that fires at exactly that rhythm."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """Milliseconds, or ValueError naming the accepted forms."""
    parts = _PART.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise ValueError(f"{text!r} is not a duration such as 500ms, 5s, 5m, 2h or 1d")
    return round(sum(float(number) * _UNITS_MS[unit] for number, unit in parts))


def every(ms: int) -> str:
    """A six-field cron (seconds first) firing every `ms`, or ValueError when no cron can.

    Cron steps restart at each minute, hour or day, so only a step that divides it evenly
    keeps a steady rhythm (every 7 s would fire at :56 and again 4 s later at :00).
    """
    seconds, rest = divmod(ms, 1_000)
    if rest or seconds <= 0:
        raise ValueError("--every takes whole seconds, at least 1s")
    if seconds < 60 and 60 % seconds == 0:
        return f"*/{seconds} * * * * *"
    minutes, rest = divmod(seconds, 60)
    if not rest and minutes < 60 and 60 % minutes == 0:
        return f"0 */{minutes} * * * *"
    hours, rest = divmod(seconds, 3_600)
    if not rest and hours < 24 and 24 % hours == 0:
        return f"0 0 */{hours} * * *"
    if seconds == 86_400:
        return "0 0 0 * * *"
    raise ValueError(
        "--every must divide a minute, an hour or a day evenly (such as 10s, 5m, 2h or 1d); "
        "use `tasks schedule add CRON URL` for other rhythms"
    )
