"""Registration: authenticated ``POST /v1/queues/register`` under the closed-loop generator,
beside the bare echo route with the same body and connections, and the generator's own
ceiling against the raw target."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from scripts.benchmark.bare import start_bare
from scripts.benchmark.cluster import Cluster, Configuration, Figures, cpu_note, versus
from scripts.benchmark.loadgen import load, not_answered, post_request
from scripts.benchmark.processes import Processes, cpu_s, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import open_db
from scripts.benchmark.target import Target, start_target

PATH = "/v1/queues/register"


def register_body(target: Target) -> bytes:
    """A registration with data, retry and metadata, due in a day (never run while measured)."""
    return orjson.dumps(
        {
            "httpRequest": {"url": f"{target.url}/never", "method": "POST", "data": {"n": 1}},
            "config": {"executionDelay": 86_400_000, "retry": 2, "retryInterval": 1000},
            "metadata": {"bench": "register"},
        }
    )


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print("register: generator ceiling, bare route, tasks-server", flush=True)
    target = start_target(procs)
    body = register_body(target)
    with open_db(work / "register.db") as db:
        owners = db.create_owners([f"bench-owner-{i}" for i in range(profile.connections)])

    def requests(port: int, path: str) -> list[bytes]:
        return [post_request(port, path, body, owner.headers) for owner in owners]

    def served(proc: subprocess.Popen[bytes], port: int, path: str) -> dict[str, Any]:
        """The load against a server, with the server's CPU seconds meanwhile; then stop it."""
        cpu_before = cpu_s(proc.pid)
        figures = load(procs, port, requests(port, path), profile.warmup_s, profile.duration_s)
        figures["server_cpu_s"] = cpu_s(proc.pid) - cpu_before
        procs.stop(proc)
        return figures

    ceiling = load(
        procs, target.port, requests(target.port, "/ceiling"), profile.warmup_s, profile.ceiling_s
    )
    procs.stop(target.proc)
    bare = served(*start_bare(procs), "/echo")
    server = start_server(procs, work, work / "register.db", "register")
    measured = served(server.proc, server.port, PATH)

    window = profile.warmup_s + profile.duration_s
    for figures in (bare, measured):  # server CPU over warmup + window, per request answered
        figures["cpu_us_per_request"] = figures["server_cpu_s"] / (figures["rps"] * window) * 1e6
    report.details["register"] = {"ceiling": ceiling, "bare": bare, "server": measured}
    errors = not_answered(measured, 201)
    if errors:
        print(f"  ! {errors} registrations did not answer 201: {measured['statuses']}")
    rps = measured["rps"]
    report.add(
        Row(
            "register throughput",
            "req/s",
            rps,
            bare["rps"],
            "bare route",
            ">=0.33x bare, >=2,000",
            rps >= bare["rps"] / 3 and rps >= 2_000 and not errors,
        )
    )
    for q in ("p50", "p99"):
        report.add(
            Row(f"register latency {q}", "ms", measured[f"{q}_ms"], bare[f"{q}_ms"], "bare route")
        )
    report.add(Row("load generator ceiling", "req/s", ceiling["rps"], rps, "register"))


def on_nodes(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """Closed-loop registrations, the generator's connections spread over the nodes."""
    body = register_body(cluster.target)
    nodes = [cluster.servers[i % len(cluster.servers)] for i in range(len(cluster.owners))]
    requests = [
        post_request(server.port, PATH, body, owner.headers)
        for owner, server in zip(cluster.owners, nodes, strict=True)
    ]
    before = cluster.cpu()
    measured = load(
        procs, [server.port for server in nodes], requests, profile.warmup_s, profile.duration_s
    )
    measured["cores"] = cluster.cores(before, cluster.cpu(), measured["cpu_s"])
    measured["value"] = measured["rps"]
    errors = not_answered(measured, 201)
    if errors:
        print(f"  ! {cluster.name}: {errors} registrations did not answer 201")
    return measured


def nodes_rows(profile: Profile, config: Configuration, figures: Figures) -> Iterator[Row]:
    figure = figures[config.name]
    baseline, base_name = versus(config, figures)
    note = cpu_note(figure["cores"])
    yield Row(f"register, {config.name}", "req/s", figure["value"], baseline, base_name, note=note)
