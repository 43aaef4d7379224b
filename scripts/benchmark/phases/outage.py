"""The circuit breaker's scenario (SPEC §18.1): 200 tasks to a destination that refuses
connections for 30 s and then recovers, beside the same 200 with `circuitBreaker: false`, in
one server (two owners, each its own refusing port, recovering at the same instant): attempts
made while it was down, retries spent, and when every task had succeeded. Opt-in
(``--only outage``): it lasts a minute or more."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.benchmark.phases.execution import wait_done
from scripts.benchmark.processes import Processes, free_port, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import BenchDb, open_db
from scripts.benchmark.target import start_target
from tasks_server.timeutil import now_ms

TASKS = 200
DOWN_MS = 30_000
LEAD_MS = 2_500
# Retries enough to outlast the outage without the breaker: 12 of them, 5 s apart.
RETRIES = {"retry": 12, "retryInterval": 5_000, "retryExponential": False}
RUNS = {"on": RETRIES, "off": {**RETRIES, "circuitBreaker": False}}


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print(f"outage: {TASKS} tasks, their destination refusing for {DOWN_MS // 1000} s", flush=True)
    ports = {name: free_port() for name in RUNS}  # nothing listens there: refused
    with open_db(work / "outage.db") as db:
        owners = dict(zip(RUNS, db.create_owners([f"outage-{name}" for name in RUNS]), strict=True))
        server = start_server(procs, work, db.location, "outage")
        due = now_ms() + LEAD_MS
        ids = {
            name: db.seed(owners[name], [due] * TASKS, f"http://127.0.0.1:{ports[name]}/x", config)
            for name, config in RUNS.items()
        }
        time.sleep(max(0.0, (due + DOWN_MS) / 1000 - time.time()))  # the outage lasting
        recovered = now_ms()
        targets = {name: start_target(procs, ports[name]) for name in RUNS}
        ready = now_ms()
        wait_done(lambda: sum(db.running(owner) for owner in owners.values()), timeout=900)
        figures = {name: _figures(db, ids[name], recovered) for name in RUNS}
        states = db.states()
        procs.stop(server.proc)
    for target in targets.values():
        procs.stop(target.proc)
    report.details["outage"] = {
        "down_ms": DOWN_MS,
        "target_up_after_ms": ready - recovered,
        "states": states,
        **{name: asdict(figure) for name, figure in figures.items()},
    }
    on, off = figures["on"], figures["off"]
    for label, unit, ours, theirs in (
        ("attempts while down", "attempts", on.attempts_down, off.attempts_down),
        ("retries spent", "retries", on.retries, off.retries),
        ("all SUCCESS after recovery", "ms", on.done_after_ms, off.done_after_ms),
    ):
        report.add(
            Row(
                f"outage {DOWN_MS // 1000} s, {TASKS} tasks: {label}",
                unit,
                ours,
                theirs,
                "no breaker",
            )
        )
    report.add(
        Row(
            "outage: every task SUCCESS, breaker on and off",
            "tasks",
            on.success + off.success,
            None,
            "",
            f"{2 * TASKS}",
            on.success == off.success == TASKS,
        )
    )


@dataclass(frozen=True, slots=True)
class Figures:
    attempts: int
    attempts_down: int  # started before the destination recovered
    retries: int  # attempts after each task's first
    success: int  # tasks whose last attempt succeeded
    done_after_ms: int  # from the recovery to the last success


def _figures(db: BenchDb, ids: list[str], recovered: int) -> Figures:
    attempts = [db.attempts(queue_id) for queue_id in ids]
    flat = [a for rows in attempts for a in rows]
    successes = [rows[-1] for rows in attempts if rows and rows[-1].outcome == "SUCCESS"]
    return Figures(
        attempts=len(flat),
        attempts_down=sum(a.started_at < recovered for a in flat),
        retries=len(flat) - len(ids),
        success=len(successes),
        done_after_ms=max((a.finished_at for a in successes), default=recovered) - recovered,
    )
