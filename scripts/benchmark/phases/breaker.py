"""What destination health costs (SPEC §20: at most 5 % of burst throughput): the same burst
drained with the circuit breaker and lateness checks on (the default breaker, a maxLateness no
task reaches) and off (`circuitBreaker: false`, no maxLateness), the median of each.

One drain of a burst swings by a quarter from one run to the next here, more than the checks
cost, so the two kinds take turns in an order that alternates each round (on off, off on,
...): neither always runs first, on a target or box that is warming or cooling. The server's
CPU per attempt, which swings less, is printed beside."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from scripts.benchmark.phases.burst import BURST
from scripts.benchmark.phases.execution import drain
from scripts.benchmark.processes import Processes
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row

CHECKS: dict[str, dict[str, Any]] = {
    "on": {"maxLateness": 3_600_000},
    "off": {"circuitBreaker": False},
}
ROUNDS = 4  # each order twice
TARGET = 0.95


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print(f"breaker: a burst of {BURST:,} with the health checks on and off", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in CHECKS}
    cpu: dict[str, list[float]] = {name: [] for name in CHECKS}  # µs per attempt
    kinds = list(CHECKS)
    for turn in range(ROUNDS):
        for name in kinds if turn % 2 == 0 else kinds[::-1]:
            drained = drain(profile, procs, work, f"breaker-{name}-{turn}", BURST, CHECKS[name])
            if drained.states != {"SUCCESS": BURST}:
                print(f"  ! not every task succeeded ({name}): {drained.states}")
            rates[name].append(drained.rate)
            cpu[name].append(drained.server_cpu_us)
    on, off = median(rates["on"]), median(rates["off"])
    report.details["breaker"] = {"tasks": BURST, "attempts_per_s": rates, "cpu_us": cpu}
    report.add(
        Row(
            f"burst of {BURST:,}, breaker + lateness checks on",
            "attempts/s",
            on,
            off,
            "checks off",
            f">={TARGET}x off",
            on >= TARGET * off,
            note=f"medians of {ROUNDS}",
        )
    )
    report.add(
        Row(
            f"burst of {BURST:,}, checks on: server CPU",
            "µs/attempt",
            median(cpu["on"]),
            median(cpu["off"]),
            "checks off",
            note=f"medians of {ROUNDS}: steadier than the rates on a loaded box",
        )
    )
