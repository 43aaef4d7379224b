"""Registering into an owner holding 50,000 tasks against an empty owner (SPEC §14: the limit
check is O(1))."""

from __future__ import annotations

from pathlib import Path

import orjson

from scripts.benchmark.loadgen import load, post_request
from scripts.benchmark.phases.register import PATH
from scripts.benchmark.processes import Processes, Server, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row, percentile
from scripts.benchmark.seed import open_db
from scripts.benchmark.target import start_target
from tasks_server.timeutil import now_ms

GROWN_OWNER = 50_000  # tasks the owner already holds in the second registration run
GROWTH_ROUNDS = 3  # windows per owner, alternating: one window each is mostly host noise


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    """Both servers run side by side and take turns under load, `GROWTH_ROUNDS` windows each,
    the order swapped every round; each rate is the median of its windows. A single window
    per owner moved the ratio from 0.8x to 1.35x between runs of the same code."""
    print(f"register growth: an empty owner against one holding {GROWN_OWNER:,}", flush=True)
    target = start_target(procs)
    body = orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "GET"},
            "config": {"executionDelay": 86_400_000},
        }
    )
    requests: dict[str, list[bytes]] = {}
    servers: list[Server] = []
    for label, waiting in (("empty", 0), ("grown", GROWN_OWNER)):
        with open_db(work / f"growth-{label}.db") as db:
            (owner,) = db.create_owners([f"growth-{label}"])
            if waiting:
                db.seed(owner, [now_ms() + 86_400_000] * waiting, f"{target.url}/never")
        server = start_server(procs, work, db.location, f"growth-{label}")
        servers.append(server)
        request = post_request(server.port, PATH, body, owner.headers)
        requests[label] = [request] * profile.connections
    ports = {"empty": servers[0].port, "grown": servers[1].port}
    windows: dict[str, list[float]] = {"empty": [], "grown": []}
    window_s = 2 * profile.duration_s / GROWTH_ROUNDS  # twice the time of one window each
    for round_ in range(GROWTH_ROUNDS):
        for label in ("empty", "grown") if round_ % 2 == 0 else ("grown", "empty"):
            measured = load(procs, ports[label], requests[label], profile.warmup_s, window_s)
            windows[label].append(measured["rps"])
    for server in servers:
        procs.stop(server.proc)
    procs.stop(target.proc)
    rates = {label: percentile(rps, 50) for label, rps in windows.items()}
    report.details["register_growth"] = {**rates, "windows": windows}
    ratio = rates["grown"] / rates["empty"]
    report.add(
        Row(
            f"register into an owner with {GROWN_OWNER:,}",
            "req/s",
            rates["grown"],
            rates["empty"],
            "empty owner",
            ">=0.9x empty",
            ratio >= 0.9,
        )
    )
