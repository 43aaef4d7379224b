"""``--postgres``: register, a burst and lateness on SQLite's one node and on 1, 2 and 3
nodes sharing one PostgreSQL (SPEC §14), with the cores each side used."""

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
from scripts.benchmark.target import start_target


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


def run(
    profile: Profile,
    phases: Sequence[str],
    procs: Processes,
    work: Path,
    report: Report,
    database_url: str | None,
) -> None:
    """Each phase on every configuration, a fresh database each; then the rows, by phase."""
    figures: dict[str, Figures] = {phase: {} for phase in phases}
    with postgres_server(database_url) as pg:
        target = start_target(procs)
        for config in CONFIGURATIONS:
            print(f"postgres: {config.name}: {', '.join(phases)}", flush=True)
            with _database(config, pg, work) as location, open_db(location) as db:
                names = [f"owner-{i}" for i in range(profile.connections)]
                *owners, seeded = db.create_owners([*names, "seeded"])
                servers = [
                    start_server(procs, work, location, f"{config.name}-{n}")
                    for n in range(config.nodes)
                ]
                postmaster = pg.postmaster if config.engine == "pg" else None
                cluster = Cluster(config.name, db, servers, owners, seeded, target, postmaster)
                for phase in phases:
                    figures[phase][config.name] = PHASES[phase].on_nodes(profile, procs, cluster)
                for server in servers:
                    procs.stop(server.proc)
        procs.stop(target.proc)
    report.details["postgres"] = figures
    for phase in phases:
        for config in CONFIGURATIONS:
            for row in PHASES[phase].nodes_rows(profile, config, figures[phase]):
                report.add(row)


def _database(
    config: Configuration, pg: PostgresServer, work: Path
) -> contextlib.AbstractContextManager[Path | str]:
    if config.engine == "sqlite":
        return contextlib.nullcontext(work / f"sqlite-{config.nodes}.db")
    return pg.database()
