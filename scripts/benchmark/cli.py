"""``./scripts/bench``: which phases, how big, and the table at the end."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pycurl

from scripts.benchmark import postgres
from scripts.benchmark.phases import (
    breaker,
    burst,
    execution,
    growth,
    lateness,
    lists,
    outage,
    register,
    scale,
    workflows,
)
from scripts.benchmark.processes import Processes
from scripts.benchmark.profiles import FULL, QUICK, TINY, Profile
from scripts.benchmark.report import Report, print_table

PHASES = (
    *("register", "growth", "execution", "burst", "breaker", "lateness", "scale", "lists"),
    "workflows",
)
OPT_IN = ("outage",)  # run only when named in --only: a minute or more
POSTGRES_PHASES = tuple(postgres.PHASES)
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Measure tasks-server against same-run baselines."
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    sizes.add_argument("--tiny", action="store_true", help="smallest sizes: checks it runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="SQLite beside 1, 2 and 3 nodes on one PostgreSQL (SPEC §14), not the §8 phases",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="with --postgres: an existing server (the bench creates and drops databases"
        " on it) instead of one started in a temp folder",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated phases to run (default: all; {','.join(PHASES)}, or with"
        f" --postgres {','.join(POSTGRES_PHASES)}; opt-in: {','.join(OPT_IN)})",
    )
    return parser


def run_phases(
    profile: Profile, phases: Sequence[str], procs: Processes, work: Path, report: Report
) -> None:
    """The SPEC §8 and §14 phases on one SQLite node."""
    rate: float | None = None
    if "register" in phases:
        register.run(profile, procs, work, report)
    if "growth" in phases:
        growth.run(profile, procs, work, report)
    if "execution" in phases:
        rate = execution.run(profile, procs, work, report)
    if "burst" in phases:
        burst.run(profile, procs, work, report)
    if "breaker" in phases:
        breaker.run(profile, procs, work, report)
    if "lateness" in phases:
        lateness.run(profile, procs, work, report, rate)
    if "scale" in phases:
        scale.run(profile, procs, work, report)
    if "lists" in phases:
        lists.run(profile, procs, work, report)
    if "outage" in phases:
        outage.run(profile, procs, work, report)
    if "workflows" in phases:
        workflows.run(profile, procs, work, report)


def run(
    profile: Profile,
    phases: Sequence[str],
    json_path: Path | None,
    on_postgres: bool = False,
    database_url: str | None = None,
) -> Report:
    report = Report()
    started = time.perf_counter()
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        work = Path(tmp)
        if on_postgres:
            postgres.run(profile, phases, procs, work, report, database_url)
        else:
            run_phases(profile, phases, procs, work, report)
    wall = time.perf_counter() - started
    print_table(report)
    print(f"\n{profile.name} run, {wall:.1f} s, {os.cpu_count()} CPUs shared by every process")
    if json_path is not None:
        document = {
            "profile": asdict(profile),
            "wall_s": wall,
            "machine": _machine(),
            "rows": [row.as_json() for row in report.rows],
            "details": report.details,
        }
        json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return report


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libcurl": pycurl.version,
        "load_average": os.getloadavg(),
    }


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the cleanup of every process and temp dir


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    default = POSTGRES_PHASES if args.postgres else PHASES
    known = default if args.postgres else (*PHASES, *OPT_IN)
    phases = [p.strip() for p in (args.only or ",".join(default)).split(",") if p.strip()]
    unknown = set(phases) - set(known)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for name in _PROXY_VARIABLES:  # loopback only: neither curl nor urllib may use a proxy
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        profile = QUICK if args.quick else TINY if args.tiny else FULL
        run(profile, phases, args.json, args.postgres, args.database_url)
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    return 0
