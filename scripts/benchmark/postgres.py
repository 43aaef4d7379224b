"""``--postgres``: register, a burst and lateness on SQLite's one node and on 1, 2 and 3
nodes sharing one PostgreSQL (SPEC §14), with the cores each side used.

The burst is what the configurations are compared by (one node against SQLite's, three
against one), and one drain of it swings by a fifth from run to run here, more than the
margins the targets leave. So a full run drains it in `Profile.pg_rounds` rounds, the
configurations in an order reversed each round, and each configuration's figure is its
median round; a task sent twice or never in any round counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from scripts.benchmark.cluster import CONFIGURATIONS, Cluster, Configuration, Figures
from scripts.benchmark.phases import execution, lateness, register, workflows
from scripts.benchmark.processes import PostgresServer, Processes, postgres_server, start_server
from scripts.benchmark.profiles import Profile
from scripts.benchmark.report import Report, Row
from scripts.benchmark.seed import open_db
from scripts.benchmark.target import Target, start_target


class NodesPhase(Protocol):
    """A phase module that runs on every configuration."""

    def on_nodes(self, profile: Profile, procs: Processes, cluster: Cluster) -> dict[str, Any]:
        """One configuration's figures; `value` is what other configurations stand beside."""

    def nodes_rows(
        self, profile: Profile, config: Configuration, figures: Figures
    ) -> Iterator[Row]: ...


PHASES: dict[str, NodesPhase] = {
    "register": register,
    "execution": execution,
    "lateness": lateness,
    "workflows": workflows,
}
REPEATED = ("execution",)  # the phases drained in every round; the others in the first


def run(
    profile: Profile,
    phases: Sequence[str],
    procs: Processes,
    work: Path,
    report: Report,
    database_url: str | None,
) -> None:
    """Each phase on every configuration, a fresh database each, the repeated phases in
    rounds; then the rows, by phase."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {phase: {} for phase in phases}
    with postgres_server(database_url) as pg:
        target = start_target(procs)
        for turn in range(profile.pg_rounds):
            wanted = [p for p in phases if turn == 0 or p in REPEATED]
            if not wanted:
                break
            folder = work / f"round-{turn}"  # its own SQLite file and server logs
            folder.mkdir()
            for config in CONFIGURATIONS if turn % 2 == 0 else CONFIGURATIONS[::-1]:
                print(f"postgres: {config.name}: {', '.join(wanted)}", flush=True)
                measured = _measure(profile, procs, folder, pg, target, config, wanted)
                for phase, figure in measured:
                    runs[phase].setdefault(config.name, []).append(figure)
        procs.stop(target.proc)
    figures = {
        phase: {name: middle(found) for name, found in by_name.items()}
        for phase, by_name in runs.items()
    }
    report.details["postgres"] = figures
    for phase in phases:
        for config in CONFIGURATIONS:
            for row in PHASES[phase].nodes_rows(profile, config, figures[phase]):
                report.add(row)


def middle(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose `value` is the median (the lower of two), counting the tasks sent
    twice or never in every round; the one round of a phase run once."""
    ordered = sorted(found, key=lambda figure: figure.get("value", 0.0))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    for count in ("twice", "never"):
        if count in chosen:
            chosen[count] = sum(figure[count] for figure in found)
    if len(found) > 1:
        chosen["rounds"] = [figure.get("value") for figure in found]
    return chosen


def _measure(
    profile: Profile,
    procs: Processes,
    work: Path,
    pg: PostgresServer,
    target: Target,
    config: Configuration,
    phases: Sequence[str],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`phases` on `config`'s nodes, on a fresh database: each phase's figures."""
    with _database(config, pg, work) as location, open_db(location) as db:
        names = [f"owner-{i}" for i in range(profile.connections)]
        *owners, seeded = db.create_owners([*names, "seeded"])
        servers = [
            start_server(procs, work, location, f"{config.name}-{n}") for n in range(config.nodes)
        ]
        postmaster = pg.postmaster if config.engine == "pg" else None
        cluster = Cluster(config.name, db, servers, owners, seeded, target, postmaster)
        for phase in phases:
            yield phase, PHASES[phase].on_nodes(profile, procs, cluster)
        for server in servers:
            procs.stop(server.proc)


def _database(
    config: Configuration, pg: PostgresServer, work: Path
) -> contextlib.AbstractContextManager[Path | str]:
    if config.engine == "sqlite":
        return contextlib.nullcontext(work / f"sqlite-{config.nodes}.db")
    return pg.database()
