"""Workflows (SPEC §20): a chain of 100 dependent tasks, the time each hop adds (the bench
target answers at once, so a hop is all ours: the outcome, the release, the claim and the
start); and a fan-out of one parent to 1,000 children, released by the parent's outcome write.
With ``--postgres``: on each configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from scripts.benchmark.cluster import Cluster, Configuration, Figures
from scripts.benchmark.processes import Processes, http, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import Owner, open_db
from scripts.benchmark.target import Target, start_target

CHAIN = 100
CHILDREN = 1_000
HOP_TARGET_MS = {"sqlite": 5, "pg": 20}  # SPEC §20: per hop over the target's own time
PARENT_DELAY_MS = 1_000  # the parent waits this long, so its children are registered first


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print(f"workflows: a chain of {CHAIN}, a fan-out to {CHILDREN:,}", flush=True)
    target = start_target(procs)
    with open_db(work / "workflows.db") as db:
        (owner,) = db.create_owners(["bench-workflows"])
        server = start_server(procs, work, db.location, "workflows")
        measured = measure(server.url, owner, target)
        procs.stop(server.proc)
    procs.stop(target.proc)
    report.details["workflows"] = measured
    for row in _rows("", "sqlite", measured):
        report.add(row)


def on_nodes(profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
    return measure(cluster.servers[0].url, cluster.owners[0], cluster.target)


def nodes_rows(profile: Profile, config: Configuration, figures: Figures) -> Iterator[Row]:
    yield from _rows(f", {config.name}", config.engine, figures[config.name])


def _rows(suffix: str, engine: str, measured: dict[str, Any]) -> Iterator[Row]:
    limit = HOP_TARGET_MS[engine]
    hop = measured["per_hop_ms"]
    yield Row(
        f"chain of {CHAIN}: per hop{suffix}",
        "ms",
        hop,
        target=f"<={limit}",
        passed=measured["chain_complete"] and hop <= limit,
    )
    yield Row(
        f"fan-out to {CHILDREN:,}: first child started{suffix}",
        "ms",
        measured["first_child_ms"],
        note="after the parent's answer",
    )
    yield Row(f"fan-out to {CHILDREN:,}: all started{suffix}", "ms", measured["all_children_ms"])


def measure(server_url: str, owner: Owner, target: Target) -> dict[str, Any]:
    target.dump()
    headers = {"Authorization": f"Bearer {owner.key}", "X-Tasks-Owner-Id": owner.id}
    chain = [_task(f"{target.url}/chain", "s0")]
    chain += [_task(f"{target.url}/chain", f"s{i}", {"ref": f"s{i - 1}"}) for i in range(1, CHAIN)]
    made = _batch(server_url, headers, chain)
    ids = [task["id"] for task in made["tasks"]]
    arrivals = _wait(target, len(ids))
    times = [arrivals[queue_id] for queue_id in ids if queue_id in arrivals]
    per_hop = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")

    status, body = http(
        "POST",
        f"{server_url}/v1/queues/register",
        _task(f"{target.url}/parent", None, executionDelay=PARENT_DELAY_MS),
        headers,
    )
    if status != 201:
        raise RuntimeError(f"the parent was refused: {status} {body[:300]!r}")
    parent = orjson.loads(body)["id"]
    children = [_task(f"{target.url}/child", None, {"id": parent}) for _ in range(CHILDREN)]
    child_ids = [task["id"] for task in _batch(server_url, headers, children)["tasks"]]
    arrivals = _wait(target, CHILDREN + 1)
    started = sorted(arrivals[queue_id] for queue_id in child_ids if queue_id in arrivals)
    parent_at = arrivals.get(parent, float("nan"))
    return {
        "chain": CHAIN,
        "chain_complete": len(times) == CHAIN,
        "per_hop_ms": per_hop,
        "children": CHILDREN,
        "children_started": len(started),
        "first_child_ms": started[0] - parent_at if started else float("nan"),
        "all_children_ms": started[-1] - parent_at if started else float("nan"),
    }


def _task(url: str, ref: str | None, *depends_on: dict[str, str], **config: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"httpRequest": {"url": url, "method": "GET"}}
    if ref is not None:
        task["ref"] = ref
    if depends_on:
        task["dependsOn"] = list(depends_on)
    if config:
        task["config"] = config
    return task


def _batch(server_url: str, headers: dict[str, str], tasks: list[dict[str, Any]]) -> Any:
    status, body = http("POST", f"{server_url}/v1/queues/batch", {"tasks": tasks}, headers)
    if status != 201:
        raise RuntimeError(f"the batch was refused: {status} {body[:300]!r}")
    return orjson.loads(body)


def _wait(target: Target, expected: int, timeout_s: float = 60.0) -> dict[str, float]:
    """Arrivals (epoch ms by queue id) once the target saw `expected` tasks, or at the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and target.count() < expected:
        time.sleep(0.05)
    return target.dump()
