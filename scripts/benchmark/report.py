"""The table: each figure beside its same-run baseline, the ratio, and the SPEC target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Row:
    """One line of the table: a figure, its same-run baseline and the SPEC §8 target."""

    metric: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_of: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""  # printed after the result (the PostgreSQL rows: CPU use)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {_format_row(row)}", flush=True)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("req/s", "attempts/s", "tasks"):
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def _cells(row: Row) -> list[str]:
    ratio = row.ratio
    result = "" if row.passed is None else ("PASS" if row.passed else "MISS")
    baseline = _number(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_of:
        baseline += f" ({row.baseline_of})"
    return [
        f"{row.metric} ({row.unit})",
        _number(row.value, row.unit),
        baseline,
        "—" if ratio is None else f"{ratio:.2f}x",
        row.target or "—",
        result,
    ]


_HEADER = ["metric", "value", "baseline", "x base", "target", "result"]
_WIDTHS = [40, 10, 26, 7, 22, 6]


def _format_row(row: Row) -> str:
    line = _line(_cells(row))
    return f"{line}  {row.note}" if row.note else line


def _line(cells: list[str]) -> str:
    left, *rest = cells
    return f"{left:<{_WIDTHS[0]}}" + "".join(
        f" {cell:>{width}}" for cell, width in zip(rest, _WIDTHS[1:], strict=True)
    )


def print_table(report: Report) -> None:
    print()
    print(_line(_HEADER))
    print("-" * (sum(_WIDTHS) + len(_WIDTHS) - 1))
    for row in report.rows:
        print(_format_row(row))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of `values` (0 < q <= 100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
