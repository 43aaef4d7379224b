"""Fire times of a schedule's cron expression in an IANA time zone (SPEC §11.1).

croniter matches the expression against naive local wall times; turning those into instants
is ours, so daylight-saving changes behave as the SPEC says:

- a local time that does not exist (the spring-forward gap) fires at the end of the gap;
- an ambiguous local time (the fall-back hour, seen twice) fires once, at its first
  occurrence.

Expressions: 5 fields, or 6 with seconds first, or a macro (``@hourly``, ``@daily``,
``@weekly``, ``@monthly``, ``@yearly``/``@annually``, ``@midnight``). An expression that
parses but matches no date (``0 0 31 2 *``) is refused too: it would never fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from tasks_server.timeutil import time_zone

MACROS = frozenset(
    ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")
)
_MAX_STEPS = 10_000  # candidate local times examined per call: a year of minutes' gaps at most
_MINUTE = timedelta(minutes=1)
# The Gregorian calendar repeats every 400 years, weekdays included: an expression that
# matches no date in that span matches none ever.
_YEARS = 400


class CronError(ValueError):
    """The expression or the time zone is not valid (the API answers 400)."""


class Cron:
    """`seconds_first=False` reads 6 fields with the seconds last (croniter's own dialect)."""

    def __init__(
        self, expression: str, timezone: str = "UTC", *, seconds_first: bool = True
    ) -> None:
        self.expression = expression.strip()
        fields = self.expression.split()
        self._seconds_first = seconds_first and len(fields) == 6
        if self.expression.lower() in MACROS:
            self.expression = self.expression.lower()
        elif len(fields) not in (5, 6):
            seconds = "first" if seconds_first else "last"
            raise CronError(f"cron must have 5 fields, 6 with seconds {seconds}, or be a macro")
        if not croniter.is_valid(self.expression, second_at_beginning=self._seconds_first):
            raise CronError(f"invalid cron expression {expression!r}")
        try:
            self.zone = time_zone(timezone)
        except ValueError as exc:
            raise CronError(f"timezone {exc}") from None
        try:
            self.next_after(0)  # whether it ever fires does not depend on when we ask
        except CroniterBadDateError:
            raise CronError(f"cron {expression!r} never fires: no date matches it") from None

    def next_after(self, after_ms: int) -> int:
        """The first fire time strictly after `after_ms` (epoch ms)."""
        after = datetime.fromtimestamp(after_ms / 1000, UTC)
        local = after.astimezone(self.zone).replace(tzinfo=None, fold=0)
        matches = croniter(
            self.expression,
            local,
            max_years_between_matches=_YEARS,
            second_at_beginning=self._seconds_first,
        )
        for _ in range(_MAX_STEPS):
            instant = self._instant(matches.get_next(datetime))
            if instant > after:
                return int(instant.timestamp() * 1000)
        raise CronError(f"{self.expression!r} has no fire time soon enough")

    def _instant(self, wall: datetime) -> datetime:
        """The instant a local wall time stands for: its first occurrence, or the end of
        the gap it falls in."""
        while not self._exists(wall):
            wall = wall.replace(second=0, microsecond=0) + _MINUTE
        return wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def _exists(self, wall: datetime) -> bool:
        aware = wall.replace(tzinfo=self.zone, fold=0)
        return aware.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall
