"""Waiting for a condition the test cannot be told about: poll it until a deadline.

Deadlines here are bounds, not estimates: a check that holds returns at once, so a deadline
sized for a loaded machine costs nothing on a quiet one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """`check()`'s first truthy answer, asked every `interval` seconds; after `timeout` seconds
    an AssertionError saying `what` was awaited and what `check()` answered last."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {answer!r})")
        time.sleep(interval)


def paced_by(measured_s: float) -> float:
    """A bound for work that costs about as much as work the test just timed (`measured_s`):
    three times that plus 30 s, so it follows the machine's load instead of assuming none."""
    return 3 * measured_s + 30
