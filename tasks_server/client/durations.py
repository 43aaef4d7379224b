"""Durations as people type them: ``500ms``, ``5s``, ``5m``, ``2h``, ``1d``, or ``1h30m``."""

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
