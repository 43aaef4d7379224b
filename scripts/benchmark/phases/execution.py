"""Execution: N tasks due at one instant, attempts per second until none is RUNNING, beside a
plain pycurl ``CurlMulti`` loop sending as many requests to the same target (the ceiling of
libcurl and the target here). With ``--postgres``: a burst drained by each configuration,
with the tasks that reached the target twice or never."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycurl

from scripts.benchmark.cluster import (
    Cluster,
    Configuration,
    Figures,
    cpu_note,
    per_attempt,
    versus,
)
from scripts.benchmark.executor import executor_rps
from scripts.benchmark.processes import Processes, cpu_s, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import new_ids, open_db
from scripts.benchmark.target import start_target
from tasks_server.timeutil import now_ms

LEAD_MS = 2_500  # seeded tasks fall due this long after seeding starts
SCALE_TARGET = 1.3  # --postgres: 3 nodes against 1, attempts/s
ONE_NODE_TARGET = 0.8  # --postgres: one PostgreSQL node against SQLite's, attempts/s


def raw_curl(url: str, count: int, concurrency: int) -> float:
    """Requests per second of a plain CurlMulti loop (handles reused, keep-alive)."""
    multi = pycurl.CurlMulti()
    free: list[pycurl.Curl] = []
    for _ in range(min(concurrency, count)):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROXY, "")
        free.append(curl)
    handles = list(free)
    ids = new_ids(count)
    started = done = failed = 0
    begin = time.perf_counter()
    while done < count:
        while free and started < count:
            curl = free.pop()
            curl.setopt(pycurl.HTTPHEADER, [f"X-Tasks-Queue-Id: {ids[started]}"])
            multi.add_handle(curl)
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        finished: list[pycurl.Curl] = []
        while True:
            queued, ok, errors = multi.info_read()
            finished += ok
            finished += [curl for curl, _, _ in errors]
            failed += len(errors)
            if not queued:
                break
        for curl in finished:
            multi.remove_handle(curl)
            free.append(curl)
        done += len(finished)
        if not finished:
            multi.select(0.01)
    elapsed = time.perf_counter() - begin
    for curl in handles:
        curl.close()
    multi.close()
    if failed:
        print(f"  ! raw curl: {failed} requests failed")
    return count / elapsed


def wait_done(running: Callable[[], int], timeout: float) -> float:
    """Poll until no task is RUNNING; the wall-clock time (s) when that was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running() == 0:
            return time.time()
        time.sleep(0.02)
    raise TimeoutError("tasks were still RUNNING at the deadline")


@dataclass(frozen=True, slots=True)
class Drained:
    """A burst due at one instant, run to the end by one node on SQLite."""

    raw_rps: float  # the raw CurlMulti loop: as many requests to the same target
    due: int  # epoch ms
    rate: float  # tasks / (none RUNNING - due): attempts per second
    arrivals: list[float]  # at the target (epoch ms), in order
    server_cpu_us: float  # per attempt, from the end of seeding to the end of the burst
    states: dict[str, int]  # the tasks' states at the end
    executor_rps: float | None = None  # the executor alone (`executor.executor_rps`)


def drain(
    profile: Profile,
    procs: Processes,
    work: Path,
    name: str,
    tasks: int,
    config: dict[str, Any] | None = None,
    *,
    executor: bool = False,
) -> Drained:
    """The raw loop against a fresh target (and with `executor`, the executor alone), then
    `tasks` (with `config`) seeded due `LEAD_MS` ahead while a server runs, drained."""
    target = start_target(procs)
    raw = raw_curl(f"{target.url}/raw", tasks, profile.raw_concurrency)
    alone = None
    if executor:
        alone = executor_rps(f"{target.url}/executor", tasks, profile.raw_concurrency)
    target.dump()
    with open_db(work / f"{name}.db") as db:
        (owner,) = db.create_owners([f"bench-{name}"])
        server = start_server(procs, work, db.location, name)
        due = now_ms() + LEAD_MS
        db.seed(owner, [due] * tasks, f"{target.url}/{name}", config)
        cpu_before = cpu_s(server.proc.pid)
        done_at = wait_done(lambda: db.running(owner), timeout=300)
        server_cpu = cpu_s(server.proc.pid) - cpu_before
        procs.stop(server.proc)
        states = db.states()
    arrivals = sorted(target.dump().values())
    procs.stop(target.proc)
    rate = tasks / (done_at - due / 1000)
    return Drained(raw, due, rate, arrivals, server_cpu / tasks * 1e6, states, alone)


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> float:
    """Attempts per second of a burst due at once; returns the rate (for the burst bound)."""
    print(f"execution: {profile.exec_tasks:,} tasks due at once", flush=True)
    drained = drain(profile, procs, work, "execution", profile.exec_tasks)
    arrivals, due, rate = drained.arrivals, drained.due, drained.rate
    started_rate = len(arrivals) / max(1e-3, (arrivals[-1] - due) / 1000) if arrivals else 0.0
    report.details["execution"] = {
        "tasks": profile.exec_tasks,
        "raw_concurrency": profile.raw_concurrency,
        "raw_rps": drained.raw_rps,
        "attempts_per_s": rate,
        "started_per_s": started_rate,
        "first_start_after_due_ms": arrivals[0] - due if arrivals else None,
        "server_cpu_us_per_attempt": drained.server_cpu_us,
        "states": drained.states,
    }
    if drained.states != {"SUCCESS": profile.exec_tasks}:
        print(f"  ! not every task succeeded: {drained.states}")
    report.add(
        Row(
            "execution (recorded)",
            "attempts/s",
            rate,
            drained.raw_rps,
            "raw CurlMulti",
            ">=3,000",
            rate >= 3_000,
        )
    )
    return rate


def on_nodes(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    """A burst due at one instant, drained; how often each task reached the target."""
    cluster.target.records()
    due = now_ms() + profile.pg_lead_ms
    ids = cluster.db.seed(cluster.seeded, [due] * profile.pg_burst, f"{cluster.target.url}/b")
    time.sleep(max(0.0, due / 1000 - time.time()))  # CPU is counted from the due instant
    before = cluster.cpu()
    done_at = wait_done(lambda: cluster.db.running(cluster.seeded), timeout=300)
    cores = cluster.cores(before, cluster.cpu())
    seen = Counter(queue_id for queue_id, _ in cluster.target.records())
    return {
        "value": profile.pg_burst / (done_at - due / 1000),
        "cores": cores,
        "twice": sum(count - 1 for count in seen.values() if count > 1),
        "never": len(set(ids) - set(seen)),
    }


def nodes_rows(profile: Profile, config: Configuration, figures: Figures) -> Iterator[Row]:
    figure = figures[config.name]
    baseline, base_name = versus(config, figures)
    if config.nodes == 3:
        target, ratio = f">={SCALE_TARGET}x 1 node", SCALE_TARGET
    elif config.engine == "pg" and config.nodes == 1:
        target, ratio = f">={ONE_NODE_TARGET}x sqlite", ONE_NODE_TARGET
    else:
        target, ratio = "", 0.0
    yield Row(
        f"burst {profile.pg_burst:,}, {config.name}",
        "attempts/s",
        figure["value"],
        baseline,
        base_name,
        target,
        figure["value"] >= ratio * baseline if target and baseline else None,
        f"{cpu_note(figure['cores'])}; {per_attempt(figure['cores'], figure['value'])}",
    )
    wrong = figure["twice"] + figure["never"]
    yield Row(f"burst, {config.name}: twice or never", "tasks", wrong, None, "", "0", wrong == 0)
