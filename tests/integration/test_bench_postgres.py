"""`scripts/bench --postgres` end to end at its tiniest sizes, so it cannot silently rot.

The figures of so small a run mean nothing; what is checked is that every configuration ran
every phase (the burst in rounds), each row carries its CPU use, and no task ran twice or
never.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from tests import processes
from tests.postgres import Databases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]  # `python -m scripts.benchmark` runs from here
CONFIGURATIONS = ("sqlite", "pg 1 node", "pg 2 nodes", "pg 3 nodes")


def test_the_postgres_bench_runs_every_configuration(
    tmp_path: Path, postgres_databases: Databases
) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "scripts.benchmark", "--postgres", "--tiny"]
    command += ["--json", str(out), "--database-url", postgres_databases.url]
    finished = processes.run(command, timeout=220, cwd=ROOT)  # with every server it started
    assert finished.returncode == 0, finished.stdout + finished.stderr

    written = orjson.loads(out.read_bytes())
    rows = {row["metric"]: row for row in written["rows"]}
    for name in CONFIGURATIONS:
        assert rows[f"register, {name}"]["value"] > 0
        assert rows[f"burst 200, {name}"]["note"].startswith("cores: nodes ")
        assert "µs/attempt: nodes " in rows[f"burst 200, {name}"]["note"]
        assert rows[f"burst, {name}: twice or never"]["passed"] is True
        assert rows[f"lateness 1,000/s p99, {name}"]["value"] >= 0
        # The burst in two rounds (the tiny profile's), its figure the lower of the two.
        rounds = written["details"]["postgres"]["execution"][name]["rounds"]
        assert len(rounds) == 2
        assert rows[f"burst 200, {name}"]["value"] == min(rounds)
    assert rows["burst 200, pg 3 nodes"]["target"] == ">=1.3x 1 node"
    assert rows["burst 200, pg 1 node"]["target"] == ">=0.8x sqlite"
    assert rows["lateness 1,000/s p99, pg 1 node"]["target"] == "<=20"
