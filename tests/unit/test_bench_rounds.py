"""How `scripts/bench --postgres` makes one figure of a configuration's rounds."""

from __future__ import annotations

from scripts.benchmark.postgres import middle


def test_the_median_round_is_the_figure_with_every_rounds_value() -> None:
    found = [
        {"value": 5_000.0, "cores": {"nodes": 0.5}, "twice": 0, "never": 0},
        {"value": 3_000.0, "cores": {"nodes": 0.3}, "twice": 0, "never": 0},
        {"value": 4_000.0, "cores": {"nodes": 0.4}, "twice": 0, "never": 0},
    ]
    chosen = middle(found)
    assert chosen["value"] == 4_000.0
    assert chosen["cores"] == {"nodes": 0.4}  # the CPU of that same round
    assert chosen["rounds"] == [5_000.0, 3_000.0, 4_000.0]


def test_of_an_even_number_of_rounds_the_lower_middle_one_is_taken() -> None:
    assert middle([{"value": 2.0}, {"value": 1.0}, {"value": 4.0}, {"value": 3.0}])["value"] == 2.0


def test_a_task_sent_twice_or_never_in_any_round_counts() -> None:
    found = [
        {"value": 1.0, "twice": 0, "never": 0},
        {"value": 2.0, "twice": 0, "never": 0},
        {"value": 3.0, "twice": 2, "never": 1},
    ]
    chosen = middle(found)
    assert chosen["value"] == 2.0
    assert (chosen["twice"], chosen["never"]) == (2, 1)


def test_a_phase_run_once_keeps_its_figure_as_it_is() -> None:
    figure = {"p50": 1.2, "p99": 6.3, "tasks": 10_000}
    assert middle([figure]) == figure
