"""Dependencies across two `tasks-server serve` nodes on one PostgreSQL (SPEC §17.2): parents
ending at the same instant on two nodes release their child once; a parent whose node is
killed with -9 mid-flight runs again elsewhere, and its children are released once."""

from __future__ import annotations

import collections
import functools
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tasks_server.timeutil import now_ms
from tests.integration.nodes import PostgresNodes, postgres_nodes
from tests.integration.server import STARTUP_TIMEOUT_S
from tests.polling import eventually
from tests.postgres import Databases
from tests.target import Step, Target

PAIRS = 20
HOLD_MS = 120_000  # an answer that comes only after the test
TAKEN_OVER_S = 60  # the killed node's lease (20 s) expires, then another node runs it

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2 * STARTUP_TIMEOUT_S + 300)]


class Nodes:
    def __init__(self, started: PostgresNodes, target: Target) -> None:
        self.servers = started.servers
        self.clients = started.clients
        self.target = target
        self.headers: dict[str, str] = {}
        owner = self.call(0, "POST", "/v1/owners/register", {"name": "workflows"}).json()
        self.headers = {"Authorization": f"Bearer {owner['key']}", "X-Tasks-Owner-Id": owner["id"]}

    def call(self, node: int, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.clients[node].request(method, path, json=body, headers=self.headers)

    def register(self, node: int, path: str, *parents: str, **config: Any) -> str:
        body: dict[str, Any] = {
            "httpRequest": {"url": f"{self.target.url}{path}", "method": "GET"},
            "config": config,
        }
        if parents:
            body["dependsOn"] = [{"id": parent} for parent in parents]
        response = self.call(node, "POST", "/v1/queues/register", body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def hits(self, prefix: str) -> collections.Counter[str]:
        return collections.Counter(
            hit.queue_id for hit in list(self.target.hits) if hit.path.startswith(prefix)
        )


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, postgres_databases: Databases
) -> Iterator[Nodes]:
    workdir = tmp_path_factory.mktemp("pg-workflows")
    with Target() as target, postgres_nodes(workdir, postgres_databases, 2) as started:
        yield Nodes(started, target)


def test_parents_ending_at_once_on_two_nodes_release_their_child_once(nodes: Nodes) -> None:
    at = now_ms() + 1_500  # inside the window: each registering node holds its parent
    children = []
    for pair in range(PAIRS):
        left = nodes.register(0, f"/fan-in/parent/{pair}", executeAt=at)
        right = nodes.register(1, f"/fan-in/parent/{pair}", executeAt=at)
        children.append(nodes.register(pair % 2, f"/fan-in/child/{pair}", left, right))
    eventually(lambda: len(nodes.hits("/fan-in/child/")) >= PAIRS, 30, "every child ran")
    assert set(nodes.hits("/fan-in/child/")) == set(children)
    assert set(nodes.hits("/fan-in/child/").values()) == {1}
    for child in children:
        # The target sees a request before its node has recorded the answer.
        recorded = eventually(functools.partial(_finished, nodes, child), 30, "outcome recorded")
        assert recorded == ["SUCCESS"]


def _finished(nodes: Nodes, queue_id: str) -> list[str] | None:
    """The outcomes of the task's attempts once none is in flight."""
    attempts = nodes.call(0, "GET", f"/v1/queues/{queue_id}/attempts").json()
    outcomes = [str(a["outcome"]) for a in attempts]
    return None if "IN_FLIGHT" in outcomes else outcomes


def test_a_parent_whose_node_is_killed_releases_its_children_once(nodes: Nodes) -> None:
    # The parent's first attempt is answered only after the test: node 0 dies holding it.
    nodes.target.script("/killed/parent", Step(delay_ms=HOLD_MS))
    parent = nodes.register(0, "/killed/parent", executionDelay=1, timeout=HOLD_MS)
    children = [nodes.register(1, f"/killed/child/{n}", parent) for n in range(50)]
    nodes.target.wait(lambda: parent in nodes.hits("/killed/parent"), timeout=10)
    nodes.servers[0].stop(signal.SIGKILL)
    eventually(
        lambda: len(nodes.hits("/killed/child/")) >= len(children), TAKEN_OVER_S, "children ran"
    )
    assert nodes.hits("/killed/child/") == collections.Counter(children)
    attempts = nodes.call(1, "GET", f"/v1/queues/{parent}/attempts").json()
    assert [a["outcome"] for a in attempts] == ["INTERRUPTED", "SUCCESS"]
