"""Scale: server RSS and restart-to-serving time with 1,000,000 waiting tasks, beside the
same server on an empty database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from scripts.benchmark.processes import Processes, http, rss_mb, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import open_db
from tasks_server.timeutil import now_ms


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    waiting = profile.scale_waiting
    print(f"scale: {waiting:,} waiting tasks, beside an empty database", flush=True)
    empty = _probe(procs, work, "scale-empty", 0)
    full = _probe(procs, work, "scale-full", waiting)
    report.details["scale"] = {"empty": empty, "waiting": full, "tasks": waiting}
    label = f"{waiting // 1_000_000}M" if waiting >= 1_000_000 else f"{waiting // 1_000}k"
    report.add(
        Row(
            f"RSS with {label} waiting",
            "MB",
            full["rss_mb"],
            empty["rss_mb"],
            "empty db",
            "<=150",
            full["rss_mb"] <= 150,
        )
    )
    report.add(
        Row(
            f"restart to serving, {label} waiting",
            "s",
            full["restart_s"],
            empty["restart_s"],
            "empty db",
            "<=2",
            full["restart_s"] <= 2,
        )
    )


def _probe(procs: Processes, work: Path, name: str, waiting: int) -> dict[str, Any]:
    """Start, stop, start again (timed), use the API a little, then read the RSS."""
    with open_db(work / f"{name}.db") as db:
        (owner,) = db.create_owners([name])
        seeded = time.perf_counter()
        if waiting:
            far = now_ms() + 3_600_000
            dues = [far + i * 10 for i in range(waiting)]
            db.seed(owner, dues, "http://127.0.0.1:9/never")
        seed_s = time.perf_counter() - seeded
    first = start_server(procs, work, db.location, name)
    procs.stop(first.proc)
    server = start_server(procs, work, db.location, name)
    used = time.perf_counter()
    body = {
        "httpRequest": {"url": "http://127.0.0.1:9/x", "method": "GET"},
        "config": {"executionDelay": 86_400_000},
    }
    for _ in range(20):
        http("POST", f"{server.url}/v1/queues/register", body, owner.headers)
    query = "limit=1000&order=estimateExecutionAt&state=RUNNING"
    http("GET", f"{server.url}/v1/queues?{query}", headers=owner.headers)
    status, record = http("GET", f"{server.url}/v1/owners/{owner.name}", headers=owner.headers)
    api_s = time.perf_counter() - used
    time.sleep(1.0)  # a couple of scheduler polls over the waiting tasks
    rss, peak = rss_mb(server.proc.pid)
    stop_s = procs.stop(server.proc)
    return {
        "seed_s": seed_s,
        "first_start_s": first.ready_s,
        "restart_s": server.ready_s,
        "rss_mb": rss,
        "peak_rss_mb": peak,
        "api_calls_s": api_s,
        "tasks_in_queue": orjson.loads(record).get("tasksInQueue") if status == 200 else None,
        "stop_s": stop_s,
    }
