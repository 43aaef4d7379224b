import dataclasses
import email.utils
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from tasks_server.models.queues import MAX_DELAY_MS, QueueConfig
from tasks_server.retry import RETRY_AFTER_CAP_MS, RetryPolicy, retry_after_ms

NOW = 1_700_000_000_000


def policy(**config: Any) -> RetryPolicy:
    return RetryPolicy.from_config(QueueConfig.model_validate(config, context={"now": NOW}))


def delays(p: RetryPolicy, count: int = 5) -> list[int]:
    return [p.delay_ms(n) for n in range(1, count + 1)]


def test_default_config_has_no_retry() -> None:
    assert policy() == RetryPolicy(limit=0, interval=1, backoff="fixed")


def test_retry_exponential_is_the_originals_linear_schedule() -> None:
    p = policy(retry=5, retryInterval=1000)
    assert p.backoff == "linear"
    assert delays(p) == [1000, 2000, 3000, 4000, 5000]


def test_retry_exponential_false_is_fixed() -> None:
    p = policy(retry=5, retryInterval=1000, retryExponential=False)
    assert delays(p) == [1000] * 5


def test_single_retry_is_fixed_whatever_retry_exponential_says() -> None:
    assert policy(retry=1, retryInterval=700, retryExponential=True).backoff == "fixed"


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("fixed", [100, 100, 100, 100, 100]),
        ("linear", [100, 200, 300, 400, 500]),
        ("exponential", [100, 200, 400, 800, 1600]),
    ],
)
def test_retry_backoff_wins_over_retry_exponential(backoff: str, expected: list[int]) -> None:
    p = policy(
        retry=5, retryInterval=100, retryExponential=backoff != "linear", retryBackoff=backoff
    )
    assert delays(p) == expected


def test_retry_max_interval_caps_every_schedule() -> None:
    for backoff in ("linear", "exponential"):
        p = policy(retry=5, retryInterval=100, retryBackoff=backoff, retryMaxInterval=250)
        assert max(delays(p)) == 250
    assert delays(policy(retry=3, retryInterval=100, retryMaxInterval=100), 3) == [100] * 3


def test_huge_exponents_stay_within_the_absolute_ceiling() -> None:
    p = policy(retry=1000, retryInterval=MAX_DELAY_MS, retryBackoff="exponential")
    assert p.delay_ms(1000) == MAX_DELAY_MS
    assert RetryPolicy(limit=1000, interval=1, backoff="exponential").delay_ms(1000) == MAX_DELAY_MS


def test_the_shortest_interval_is_one_ms() -> None:
    # retryInterval 0 is refused (as the original), so a retry storm needs at least 1 ms.
    assert delays(policy(retry=3, retryInterval=1, retryBackoff="fixed"), 3) == [1, 1, 1]


def test_retry_at_is_carried_and_means_one_retry() -> None:
    p = policy(retryAt=NOW + 5000, retry=7)
    assert (p.limit, p.retry_at) == (1, NOW + 5000)


@pytest.mark.parametrize("n", [0, -1])
def test_retry_numbers_start_at_one(n: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        RetryPolicy(limit=1, interval=1, backoff="fixed").delay_ms(n)


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy(limit=1, interval=1, backoff="fixed").limit = 2  # type: ignore[misc]


# --- Retry-After and jitter (SPEC §11.4) ---------------------------------------------------


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after_ms("120", NOW) == 120_000
    assert retry_after_ms(" 0 ", NOW) == 0
    date = email.utils.format_datetime(
        datetime.fromtimestamp((NOW + 30_000) / 1000, UTC), usegmt=True
    )
    assert retry_after_ms(date, NOW) == 30_000
    past = email.utils.format_datetime(datetime.fromtimestamp(NOW / 1000 - 60, UTC), usegmt=True)
    assert retry_after_ms(past, NOW) == 0


def test_retry_after_is_capped_at_a_day_and_ignored_when_unreadable() -> None:
    assert retry_after_ms("999999999", NOW) == RETRY_AFTER_CAP_MS == 86_400_000
    for junk in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026 00:00:00 GMT"):
        assert retry_after_ms(junk, NOW) is None, junk


def test_retry_after_is_a_floor_under_the_policy() -> None:
    policy = RetryPolicy(limit=3, interval=1000, backoff="fixed")
    rng = random.Random(1)
    assert policy.wait_ms(1, retry_after_ms=5000, rng=rng) == 5000
    assert policy.wait_ms(1, retry_after_ms=10, rng=rng) == 1000
    assert policy.wait_ms(1, rng=rng) == 1000


def test_jitter_spreads_each_wait_over_half_to_full() -> None:
    policy = RetryPolicy(limit=5, interval=10_000, backoff="linear", jitter=True)
    rng = random.Random(7)
    for n in (1, 3):
        delay = policy.delay_ms(n)
        waits = [policy.wait_ms(n, rng=rng) for _ in range(2000)]
        assert all(delay / 2 <= wait <= delay for wait in waits)
        assert min(waits) < delay * 0.55 and max(waits) > delay * 0.95  # really spread
