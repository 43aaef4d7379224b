"""Filtered list pages and the stats of an owner holding 100,000 tasks (SPEC §19.4: ≤ 50 ms).

The owner's tasks carry labels (a common `env`, a rare `team` and a unique `n`); most wait a
day ahead, and a slice falls due at once and ends (half answered, half refused), so outcome
and status filters find both rare and common matches. Each filter's page is asked `ASKS`
times over one kept-alive connection; its p50 is the figure, next to the target.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import replace
from pathlib import Path

from scripts.benchmark.processes import HOST, Processes, free_port, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row, percentile
from scripts.benchmark.seed import BenchDb, Owner, open_db, sealed_tasks
from scripts.benchmark.target import start_target
from tasks_server.store.base import Listing
from tasks_server.timeutil import now_ms

HELD = 100_000
ENDING = 2_000  # of them fall due at once: half to the target, half to a closed port
TEAMS = 100
ASKS = 30
TARGET_MS = 50.0
QUERIES = {
    "no filter": "",
    "label env (half)": "&label=env:prod",
    "label team (1 %)": "&label=team:t7",
    "two labels, none both": "&label=env:prod&label=team:t8",
    "two labels (1 %)": "&label=env:prod&label=team:t7",
    "label of 1 task": "&label=n:42042",
    "outcome SUCCESS": "&outcome=SUCCESS",
    "outcome TRANSPORT": "&outcome=TRANSPORT",
    "statusCode 0 (most)": "&statusCode=0",
    "statusCode 200": "&statusCode=200",
    "created range": "&createdFrom={start}&createdTo={middle}",
}


def _labelled(index: int) -> Listing:
    env = "prod" if index % 2 else "dev"
    labels = f'{{"env":"{env}","n":"{index}","team":"t{index % TEAMS}"}}'
    return Listing(labels, "GET", "http://127.0.0.1/never", "http://127.0.0.1:80")


def run(profile: Profile, procs: Processes, work: Path, report: Report) -> None:
    print(f"lists: filtered pages of an owner holding {HELD:,} tasks", flush=True)
    target = start_target(procs)
    urls = (f"{target.url}/ok", f"http://{HOST}:{free_port()}/refused")  # answered, refused
    with open_db(work / "lists.db") as db:
        (owner,) = db.create_owners(["lists-owner"])
        started, later = now_ms(), now_ms() + 86_400_000
        for chunk in range(0, HELD - ENDING, 10_000):
            size = min(10_000, HELD - ENDING - chunk)
            tasks = sealed_tasks([later] * size, f"{target.url}/never")
            db.insert(
                owner, [replace(t, listing=_labelled(chunk + n)) for n, t in enumerate(tasks)]
            )
        middle = now_ms()
        ending = [
            replace(task, listing=_labelled(n))
            for half, url in enumerate(urls)
            for n, task in enumerate(sealed_tasks([now_ms()] * (ENDING // 2), url), half)
        ]
        db.insert(owner, ending)
        server = start_server(procs, work, db.location, "lists")
        try:
            eventually_ended(db, owner)
            for name, query in QUERIES.items():
                path = "/v1/queues?limit=50&sort=desc" + query.format(start=started, middle=middle)
                ms = _page_ms(server.port, owner, path)
                passed = ms <= TARGET_MS
                report.add(
                    Row(f"list page: {name}", "ms", ms, target=f"<={TARGET_MS:g}", passed=passed)
                )
            # The stats read per-minute aggregates: their rows, not the attempts, set the cost.
            ms = _page_ms(server.port, owner, "/v1/stats?window=24h")
            passed = ms <= TARGET_MS
            report.add(
                Row("stats, 24 h window", "ms", ms, target=f"<={TARGET_MS:g}", passed=passed)
            )
        finally:
            procs.stop(server.proc)
            procs.stop(target.proc)


def eventually_ended(db: BenchDb, owner: Owner, timeout_s: float = 120) -> None:
    """Until the tasks due at once have ended (the server runs them)."""
    deadline = time.monotonic() + timeout_s
    while db.running(owner) > HELD - ENDING:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the due tasks did not end within {timeout_s:g} s")
        time.sleep(0.1)


def _get(conn: http.client.HTTPConnection, path: str, owner: Owner) -> None:
    conn.request("GET", path, headers=owner.headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")


def _page_ms(port: int, owner: Owner, path: str) -> float:
    """The median time of `ASKS` requests for one page, after one to warm up."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        _get(conn, path, owner)
        times = []
        for _ in range(ASKS):
            begun = time.perf_counter()
            _get(conn, path, owner)
            times.append((time.perf_counter() - begun) * 1000)
    finally:
        conn.close()
    return percentile(times, 50)
