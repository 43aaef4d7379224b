"""The destination guard end to end (SPEC §10.2, §15.1): real servers refuse every spelling
of this host and of the metadata services, and a DoH answer cannot rebind past the check.

The scenario (netns_guard.py) runs in a network namespace of its own with only ``lo``, so
that nothing can leave the machine even if the guard fails; this reads its report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import processes

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip to make a network namespace",
)

REPO = Path(__file__).resolve().parents[2]
DENY = "refused by DESTINATION_DENY"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("netns")
    command = ["unshare", "--net", "--mount", "--", sys.executable, "-m"]
    # Its servers die with it, however it ends.
    done = processes.run(
        [*command, "tests.integration.netns_guard", str(workdir)], cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_nothing_reached_this_host_or_a_metadata_service(report: dict[str, Any]) -> None:
    assert report["pwned-was-free"] is True
    connections = report["connections"]
    assert (connections["this-host"], connections["metadata"]) == (0, 0)
    assert connections["doh-rebound"] == 0


@pytest.mark.parametrize(
    ("case", "field", "address"),
    [
        ("unspecified", "httpRequest.url", "0.0.0.0"),
        ("zero", "httpRequest.url", "0.0.0.0"),
        ("unspecified-v6", "httpRequest.url", "::"),
        ("mapped-unspecified", "httpRequest.url", "0.0.0.0"),
        ("nat64", "httpRequest.url", "64:ff9b::7f00:1"),
        ("own-api", "httpRequest.url", "0.0.0.0"),
        ("resolve", "config.resolve.0.address.0", "0.0.0.0"),
        ("metadata-v4", "httpRequest.url", "100.100.100.200"),
        ("metadata-v6", "httpRequest.url", "fd00:ec2::254"),
    ],
)
def test_literals_are_refused_at_registration(
    report: dict[str, Any], case: str, field: str, address: str
) -> None:
    outcome = report[case]
    assert outcome["status"] == 400, outcome
    refusal = {"path": field, "message": f"destination {address} {DENY}"}
    assert refusal in outcome["body"]["message"]


@pytest.mark.parametrize(
    ("case", "address"),
    [
        ("hosts-entry", "0.0.0.0"),
        ("own-api-by-name", "0.0.0.0"),
        ("redirect", "0.0.0.0"),
        ("metadata-by-name", "100.100.100.200"),
        ("metadata-v6-by-name", "fd00:ec2::254"),
    ],
)
def test_names_and_redirects_are_refused_at_connect_time(
    report: dict[str, Any], case: str, address: str
) -> None:
    assert report[case] == {
        "status": 201,
        "state": "ERROR",
        "errors": [f"destination {address} {DENY}"],
    }


def test_a_doh_server_is_connected_at_the_address_that_was_checked(
    report: dict[str, Any],
) -> None:
    """The DoH host's name server answers an allowed address first and a metadata address
    after: the task still reaches its target through the DoH server that was checked."""
    assert report["doh-rebinding"] == {"status": 201, "state": "SUCCESS", "errors": [None]}
    assert report["connections"]["doh"] >= 1
    assert report["connections"]["public"].count("/after-doh") == 1
    assert report["dns-a-answers"] == 1
