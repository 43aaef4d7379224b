"""How a flow key's limits choose the tasks a claim leases (pure planning)."""

from __future__ import annotations

from tasks_server.store.base import Due
from tasks_server.store.flow import Candidate, plan, spacing_ms


def candidates(dues: list[int], parallelism: int | None, rate: float | None) -> list[Candidate]:
    return [
        Candidate(Due(f"t{n}", "o", due, 0, 0, 0, b"", "k"), parallelism, rate)
        for n, due in enumerate(dues)
    ]


def test_parallelism_leases_only_the_free_room_in_due_order() -> None:
    planned = plan(candidates([1, 2, 3, 4], 3, None), busy=1, next_start_at=0, now=5, horizon=9)
    assert [due.id for due in planned.leased] == ["t0", "t1"]
    assert all(due.start_at == 0 for due in planned.leased)


def test_a_key_at_its_parallelism_leases_nothing() -> None:
    planned = plan(candidates([1, 2], 2, None), busy=3, next_start_at=0, now=5, horizon=9)
    assert planned.leased == []


def test_rate_spaces_starts_from_now_never_in_a_burst_of_overdue_tasks() -> None:
    planned = plan(
        candidates([0, 0, 0, 0, 0], None, 5), busy=0, next_start_at=0, now=1_000, horizon=1_500
    )
    assert [due.start_at for due in planned.leased] == [1_000, 1_200, 1_400]
    assert {due.spacing_ms for due in planned.leased} == {200}
    assert planned.next_start_at == 1_600  # the next claim goes on from there


def test_rate_continues_from_the_keys_next_start_and_respects_due_times() -> None:
    planned = plan(
        candidates([900, 3_000], None, 2), busy=0, next_start_at=1_100, now=1_000, horizon=4_000
    )
    assert [due.start_at for due in planned.leased] == [1_100, 3_000]
    assert planned.next_start_at == 3_500


def test_both_limits_and_the_earliest_tasks_limits_apply() -> None:
    mixed = candidates([1, 2, 3], 2, 10) + candidates([4], 50, None)
    planned = plan(mixed, busy=0, next_start_at=0, now=0, horizon=1_000)
    assert [due.start_at for due in planned.leased] == [1, 101]


def test_spacing_rounds_up_so_the_rate_is_never_exceeded() -> None:
    assert spacing_ms(3) == 334
    assert spacing_ms(0.5) == 2_000
    assert spacing_ms(10_000) == 1
