"""``--postgres``: nodes of tasks-server on one database, as SPEC §14 compares them: SQLite's
one node, and 1, 2 and 3 nodes sharing one PostgreSQL; and the cores each side uses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from scripts.benchmark.processes import Server, cpu_s, tree_cpu_s
from scripts.benchmark.seed import BenchDb, Owner
from scripts.benchmark.target import Target


@dataclass(frozen=True, slots=True)
class Configuration:
    engine: str  # "sqlite" or "pg"
    nodes: int

    @property
    def name(self) -> str:
        if self.engine == "sqlite":
            return "sqlite"
        return f"pg {self.nodes} node{'s' if self.nodes > 1 else ''}"

    @property
    def base(self) -> Configuration | None:
        """What its figures stand beside: pg 1 node beside SQLite, more nodes beside 1."""
        if self.engine == "sqlite":
            return None
        return CONFIGURATIONS[0 if self.nodes == 1 else 1]


CONFIGURATIONS = (
    Configuration("sqlite", 1),
    Configuration("pg", 1),
    Configuration("pg", 2),
    Configuration("pg", 3),
)
# Each phase's figures: by configuration name.
Figures = dict[str, dict[str, Any]]


@dataclass(slots=True)
class Cluster:
    """A configuration's nodes on one database, and what measures their CPU use."""

    name: str
    db: BenchDb
    servers: list[Server]
    owners: list[Owner]  # one per load generator connection
    seeded: Owner  # the owner of the tasks seeded due (its RUNNING count is polled)
    target: Target
    postmaster: int | None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the nodes, PostgreSQL, and what loads them (the target and
        this process's polling; `cores` adds the load generator's)."""
        return {
            "wall": time.perf_counter(),
            "nodes": sum(tree_cpu_s(server.proc.pid) for server in self.servers),
            "pg": float("nan") if self.postmaster is None else tree_cpu_s(self.postmaster),
            "load": cpu_s(self.target.proc.pid) + time.process_time(),
        }

    def cores(
        self, before: dict[str, float], after: dict[str, float], load_s: float = 0.0
    ) -> dict[str, float]:
        """Cores used between two `cpu()` samples (CPU seconds over wall seconds)."""
        wall = after["wall"] - before["wall"]
        used = {name: after[name] - before[name] for name in ("nodes", "pg", "load")}
        used["load"] += load_s
        return {name: seconds / wall for name, seconds in used.items()}


def versus(config: Configuration, figures: Figures) -> tuple[float | None, str]:
    """The figure `config`'s stands beside in this phase, and whose it is ("" for none)."""
    if config.base is None:
        return None, ""
    return figures[config.base.name].get("value"), config.base.name


def cpu_note(cores: dict[str, float]) -> str:
    pg = "—" if math.isnan(cores["pg"]) else f"{cores['pg']:.2f}"  # nan: not measurable
    return f"cores: nodes {cores['nodes']:.2f} pg {pg} load {cores['load']:.2f}"


def per_attempt(cores: dict[str, float], rate: float) -> str:
    """CPU microseconds each attempt cost the nodes and PostgreSQL, at `rate` per second."""
    nodes = cores["nodes"] / rate * 1e6
    pg = "—" if math.isnan(cores["pg"]) else f"{cores['pg'] / rate * 1e6:,.0f}"
    return f"µs/attempt: nodes {nodes:,.0f} pg {pg}"
