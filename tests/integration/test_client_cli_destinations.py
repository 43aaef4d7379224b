"""`tasks destinations` and `tasks destination reset ID` (SPEC §18.1) against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.server import ServerProcess, free_port
from tests.integration.test_client_cli import Env
from tests.polling import eventually
from tests.target import Target


@pytest.fixture
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("cli-destinations")
    settings = {"CIRCUIT_FAILURES": 1, "CIRCUIT_OPEN_MS": 600_000}
    with ServerProcess(workdir, **settings) as server, Target() as target:
        cli = Env(server, target, workdir / "config")
        registered = cli.run("owner", "register", "cli-owner", "--save")
        assert registered.returncode == 0, registered.stderr
        yield cli


def test_destinations_lists_an_open_circuit_and_reset_closes_it(env: Env) -> None:
    empty = env.run("destinations")
    assert (empty.returncode, empty.stdout.strip()) == (0, "no destinations with failures")
    port = free_port()  # nothing listens there: the attempt is refused, the circuit opens
    added = env.run("add", f"http://127.0.0.1:{port}/refused")
    assert added.returncode == 0, added.stderr

    def listed() -> list[dict[str, object]]:
        run = env.run("destinations", "--json")
        assert run.returncode == 0, run.stderr
        rows: list[dict[str, object]] = json.loads(run.stdout)
        return rows if rows and rows[0]["state"] == "open" else []

    (row,) = eventually(listed, 30, "the circuit open")
    table = env.run("destinations")
    assert table.returncode == 0, table.stderr
    assert f"http://127.0.0.1:{port}" in table.stdout and "open" in table.stdout
    reset = env.run("destination", "reset", str(row["id"]), "--json")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["state"] == "closed"
    unknown = env.run("destination", "reset", "0" * 32)
    assert unknown.returncode == 1 and unknown.stderr.startswith("tasks: ")


def test_ls_filters_by_the_expired_outcome(env: Env) -> None:
    listed = env.run("ls", "--outcome", "expired", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
