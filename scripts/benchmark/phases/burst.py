"""A burst of 5,000 tasks due at one instant: drain rate beside the raw CurlMulti loop
(SPEC §14, §20), with the executor alone on the same target as the most a drain can reach
here, and the server's CPU per attempt."""

from __future__ import annotations

from pathlib import Path

from scripts.benchmark.phases.execution import drain
from scripts.benchmark.processes import Processes
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row

BURST = 5_000
TARGET = 0.4  # SPEC §20: of the same run's raw CurlMulti loop


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print(f"burst: {BURST:,} tasks due at one instant", flush=True)
    drained = drain(profile, procs, work, "burst", BURST, executor=True)
    late = [arrival - drained.due for arrival in drained.arrivals]
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("nan")
    report.details["burst"] = {
        "tasks": BURST,
        "raw_rps": drained.raw_rps,
        "drain_per_s": drained.rate,
        "p99_ms": p99,
        "executor_alone_per_s": drained.executor_rps,
        "server_cpu_us_per_attempt": drained.server_cpu_us,
    }
    report.add(
        Row(
            f"burst of {BURST:,}: the executor alone",
            "req/s",
            drained.executor_rps or 0.0,
            drained.raw_rps,
            "raw CurlMulti",
            note="Runner and CurlTransport, no scheduler or store",
        )
    )
    report.add(
        Row(
            f"burst of {BURST:,} drained",
            "attempts/s",
            drained.rate,
            drained.raw_rps,
            "raw CurlMulti",
            f">={TARGET}x raw",
            drained.rate >= TARGET * drained.raw_rps and len(drained.arrivals) == BURST,
            note=f"server CPU {drained.server_cpu_us:,.0f} µs/attempt",
        )
    )
    report.add(Row(f"burst of {BURST:,}: start lateness p99", "ms", p99, None, ""))
