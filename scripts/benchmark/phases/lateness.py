"""Lateness: arrival at the target minus ``estimateExecutionAt``, at rest, while 1,000 tasks a
second fall due with many more waiting, and for a burst due at one instant (all started within
N / attempts per second + 100 ms). With ``--postgres``: 1,000 a second on each configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scripts.benchmark.cluster import Cluster, Configuration, Figures, cpu_note
from scripts.benchmark.processes import Processes, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row, percentile
from scripts.benchmark.seed import open_db
from scripts.benchmark.target import Target, start_target
from tasks_server.timeutil import now_ms

TARGET_MS = 20  # --postgres: p99 at 1,000/s on every node count (SPEC §20; §14 had 50)


def run(profile: Profile, procs: Processes, work: Path, report: Report, rate: float | None) -> None:
    print(
        f"lateness: at rest, 1,000/s for {profile.load_s} s with {profile.waiting:,} waiting,"
        f" burst of {profile.burst:,}",
        flush=True,
    )
    target = start_target(procs)
    with open_db(work / "lateness.db") as db:
        (owner,) = db.create_owners(["bench-lateness"])
        far = now_ms() + 3_600_000
        db.seed(owner, [far + i for i in range(profile.waiting)], f"{target.url}/waiting")
        server = start_server(procs, work, db.location, "lateness")
        time.sleep(0.5)

        rest_at = now_ms() + 4_000
        rest = [rest_at + i * profile.rest_gap_ms for i in range(profile.rest_tasks)]
        load_at = rest[-1] + 1_000
        steady = [load_at + i for i in range(profile.load_s * 1_000)]
        burst_at = steady[-1] + 1_500
        burst = [burst_at] * profile.burst
        url = f"{target.url}/due"
        ids = [db.seed(owner, dues, url) for dues in (rest, steady, burst)]
    expected = sum(len(part) for part in ids)
    budget = profile.burst / (rate or 3_000) * 1000 + 100
    wait_arrivals(target, expected, until_ms=burst_at + max(2_000, 3 * budget))
    arrivals = target.dump()
    procs.stop(server.proc)
    procs.stop(target.proc)

    lateness = {
        name: summary(part, dues, arrivals)
        for name, part, dues in zip(
            ("rest", "load", "burst"), ids, (rest, steady, burst), strict=True
        )
    }
    report.details["lateness"] = lateness
    for name, measured in lateness.items():
        if measured["missing"]:
            print(f"  ! {measured['missing']} {name} tasks never reached the target")
    for q in ("p50", "p99", "max"):
        report.add(Row(f"lateness at rest {q}", "ms", lateness["rest"][q]))
    load_figures = lateness["load"]
    complete = not load_figures["missing"]
    for q, limit in (("p50", 2), ("p99", 20)):
        report.add(
            Row(
                f"lateness 1,000/s {q}",
                "ms",
                load_figures[q],
                lateness["rest"][q],
                "at rest",
                f"<={limit}",
                complete and load_figures[q] <= limit,
            )
        )
    report.add(
        Row("lateness 1,000/s max", "ms", load_figures["max"], lateness["rest"]["max"], "at rest")
    )
    last = lateness["burst"]["max"]
    report.add(
        Row(
            f"burst of {profile.burst:,}: all started",
            "ms",
            last,
            budget,
            "N/rate+100",
            f"<={budget:,.0f}",
            not lateness["burst"]["missing"] and last <= budget,
        )
    )


def on_nodes(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """Tasks due one per millisecond for `pg_load_s` seconds: arrival - due time."""
    cluster.target.records()
    start = now_ms() + profile.pg_lead_ms
    dues = [start + i for i in range(profile.pg_load_s * 1_000)]
    ids = cluster.db.seed(cluster.seeded, dues, f"{cluster.target.url}/spread")
    time.sleep(max(0.0, start / 1000 - time.time()))
    before = cluster.cpu()
    wait_arrivals(cluster.target, len(ids), until_ms=dues[-1] + 10_000)
    cores = cluster.cores(before, cluster.cpu())
    return {**summary(ids, dues, cluster.target.dump()), "cores": cores}


def nodes_rows(profile: Profile, config: Configuration, figures: Figures) -> Iterator[Row]:
    """p50 and p99 of each configuration; SPEC §20's target on PostgreSQL's p99."""
    figure = figures[config.name]
    complete = not figure["missing"]
    for q in ("p50", "p99"):
        limited = config.engine == "pg" and q == "p99"
        yield Row(
            f"lateness 1,000/s {q}, {config.name}",
            "ms",
            figure[q],
            target=f"<={TARGET_MS}" if limited else "",
            passed=complete and figure[q] <= TARGET_MS if limited else None,
            note=cpu_note(figure["cores"]) if q == "p99" else "",
        )


def wait_arrivals(target: Target, expected: int, until_ms: float) -> None:
    """Until the target saw `expected` queue ids, or the wall clock passes `until_ms`."""
    while now_ms() < until_ms:
        if target.count() >= expected:
            return
        time.sleep(0.1)


def summary(ids: list[str], dues: list[int], arrivals: dict[str, float]) -> dict[str, Any]:
    """Percentiles of arrival - due time over the tasks that arrived, and how many did not."""
    late = [arrivals[i] - due for i, due in zip(ids, dues, strict=True) if i in arrivals]
    return {
        "tasks": len(ids),
        "missing": len(ids) - len(late),
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late, default=float("nan")),
        "min": min(late, default=float("nan")),
    }
