import dataclasses
from typing import Any

import pytest

from tasks_server.models.queues import MAX_DELAY_MS, QueueConfig
from tasks_server.retry import RetryPolicy

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
