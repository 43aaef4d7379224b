"""Deployment files (SPEC §19.3): the systemd unit passes `systemd-analyze`, and the Kubernetes
manifests validate against the Kubernetes JSON schema and probe routes a real server answers.

The schema check uses kubernetes-validate (PyPI), which ships the Kubernetes JSON schemas of
every release it supports inside the package: it validates offline, strictly (unknown fields
are errors), through the jsonschema library.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.integration.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "tasks-server.service"
KUBERNETES = ROOT / "packaging" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*/*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported upstream, when written


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze not found: scripts/_system-packages installs systemd")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return found


def _unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart at this environment's tasks-server: `verify` checks that the
    program exists."""
    program = Path(sys.executable).parent / "tasks-server"
    text = UNIT.read_text().replace("/usr/local/bin/tasks-server", str(program))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


def _directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    run = subprocess.run(
        [_systemd_analyze(), "verify", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and bad values are only warnings to `verify`: none is allowed.
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_systemd_unit_exposure_is_rated_ok(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            _systemd_analyze(),
            "security",
            "--offline=true",
            "--threshold=20",  # exposure 2.0 or less: systemd's "OK" band
            str(_unit_here(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr


def test_systemd_unit_keeps_its_state_in_its_state_directory() -> None:
    directives = _directives()
    for key, value in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "tasks-server"),
        ("RestartPreventExitStatus", "2"),
    ]:
        assert directives[key] == [value], key
    environment = dict(value.split("=", 1) for value in directives["Environment"])
    for key in ("PATH_SQLITE", "BACKUP_PATH_DIR_SQLITE"):
        assert environment[key].startswith("/var/lib/tasks-server/"), key
    assert int(directives["TimeoutStopSec"][0]) >= 45  # the server's own grace periods


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.parent.name}/{path.name}", document)
        for path in MANIFESTS
        for document in yaml.safe_load_all(path.read_text())
    ]


def _kind(store: str, kind: str) -> dict[str, Any]:
    (found,) = (doc for name, doc in _documents() if name.startswith(store) and doc["kind"] == kind)
    return found


@pytest.mark.parametrize(("name", "document"), _documents(), ids=lambda value: str(value)[:40])
def test_kubernetes_manifests_validate_against_the_schema(
    name: str, document: dict[str, Any]
) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_manifest_with_an_unknown_field_is_refused() -> None:
    """The check can fail: a field the schema does not know is an error."""
    broken = _kind("sqlite", "StatefulSet")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_sqlite_runs_one_replica_on_a_volume_and_postgres_several_from_a_secret() -> None:
    sqlite = _kind("sqlite", "StatefulSet")
    assert sqlite["spec"]["replicas"] == 1
    (claim,) = sqlite["spec"]["volumeClaimTemplates"]
    (container,) = sqlite["spec"]["template"]["spec"]["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["PATH_SQLITE"].startswith(mounts[claim["metadata"]["name"]] + "/")

    postgres = _kind("postgres", "Deployment")
    assert postgres["spec"]["replicas"] > 1
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    secret = _kind("postgres", "Secret")
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    assert {"DATABASE_URL", "CIPHER_KEY"} <= set(secret["stringData"])


def test_kubernetes_probes_ask_routes_a_real_server_answers(tmp_path: Path) -> None:
    probes = []
    for store in ("sqlite", "postgres"):
        workload = _kind(store, "StatefulSet" if store == "sqlite" else "Deployment")
        spec = workload["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 45
        (container,) = spec["containers"]
        (port,) = container["ports"]
        for probe in ("readinessProbe", "livenessProbe"):
            action = container[probe]["httpGet"]
            assert action["port"] in (port["name"], port["containerPort"])
            probes.append(action["path"])
    assert "/health" in probes
    with ServerProcess(tmp_path) as server:
        for path in probes:
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200, path
