"""One circuit for every node (SPEC §18.1): two `tasks-server serve` nodes on one PostgreSQL
send to a destination refusing connections (a loopback port with nothing listening); its
circuit opens once, in the database; the tasks registered meanwhile on either node wait
without an attempt, other destinations and owners go on, and the probe sent once the port
answers closes the circuit for both nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tasks_server.scheduler.held import WINDOW_MS
from tests.integration.nodes import postgres_nodes
from tests.integration.server import STARTUP_TIMEOUT_S, free_port
from tests.polling import eventually
from tests.postgres import Databases
from tests.target import Target

NODES = 2
FAILURES = 4
OPEN_MS = 10_000  # long enough for what must not wait to be seen not waiting
LATER_MS = WINDOW_MS + 1_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(NODES * STARTUP_TIMEOUT_S + 120)]


class Owner:
    def __init__(self, clients: list[httpx.Client], name: str) -> None:
        self.clients = clients
        body = clients[0].post("/v1/owners/register", json={"name": name}).json()
        self.headers = {"Authorization": f"Bearer {body['key']}", "X-Tasks-Owner-Id": body["id"]}

    def call(self, node: int, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.clients[node].request(method, path, json=body, headers=self.headers)

    def register(self, node: int, url: str, **config: Any) -> str:
        document = {"httpRequest": {"url": url, "method": "GET"}, "config": config}
        response = self.call(node, "POST", "/v1/queues/register", document)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def state(self, queue_id: str) -> str:
        return str(self.call(0, "GET", f"/v1/queues/{queue_id}").json()["state"])

    def destinations(self, node: int) -> list[dict[str, Any]]:
        return self.call(node, "GET", "/v1/destinations").json()  # type: ignore[no-any-return]


@pytest.fixture
def clients(
    tmp_path_factory: pytest.TempPathFactory, postgres_databases: Databases
) -> Iterator[list[httpx.Client]]:
    workdir = tmp_path_factory.mktemp("circuit-nodes")
    env = {"CIRCUIT_FAILURES": FAILURES, "CIRCUIT_OPEN_MS": OPEN_MS}
    with postgres_nodes(workdir, postgres_databases, NODES, **env) as started:
        yield started.clients


def test_a_refusing_destination_opens_one_circuit_for_both_nodes(
    clients: list[httpx.Client],
) -> None:
    port = free_port()  # nothing listens here until the destination "recovers"
    down = f"http://127.0.0.1:{port}"
    owner, other = Owner(clients, "circuit-owner"), Owner(clients, "other-owner")
    for n in range(2 * FAILURES):  # the last may find the circuit open already, and wait
        owner.register(n % NODES, f"{down}/first")

    def opened() -> dict[str, Any] | None:
        first, second = (owner.destinations(n) for n in range(NODES))
        assert [row["id"] for row in first] == [row["id"] for row in second]  # one circuit
        (row,) = second
        return row if row["state"] == "open" else None

    circuit = eventually(opened, 30, "the circuit open, seen from both nodes")
    assert (circuit["host"], circuit["port"]) == ("127.0.0.1", port)
    assert "refused" in circuit["lastError"].lower() or "connect" in circuit["lastError"].lower()
    # Due past the window a registration holds at once: a claim takes them, on either node,
    # and reads the circuits first (a node sees another's circuit within a claim).
    waiting = [
        owner.register(n % NODES, f"{down}/later", retry=3, executionDelay=LATER_MS)
        for n in range(2 * NODES)
    ]

    with Target(port=port) as recovered, Target() as elsewhere:
        theirs = other.register(1, f"{down}/theirs")  # another owner: its own circuit
        fine = owner.register(0, f"{elsewhere.url}/fine")  # another destination
        for who, queue_id in ((other, theirs), (owner, fine)):
            eventually(lambda w=who, q=queue_id: w.state(q) == "SUCCESS", 30, "not held")
        sent = recovered.hits_for("/theirs") + elsewhere.hits_for("/fine")
        assert all(hit.at_ms < circuit["openUntil"] for hit in sent)

        for queue_id in waiting:
            eventually(lambda q=queue_id: owner.state(q) == "SUCCESS", 60, "held tasks sent")
        later = recovered.hits_for("/later")
        assert sorted(hit.queue_id for hit in later) == sorted(waiting)  # once each
        assert all(hit.at_ms >= circuit["openUntil"] for hit in later)
        for queue_id in waiting:  # never attempted while open: no failure, no retry spent
            attempts = owner.call(0, "GET", f"/v1/queues/{queue_id}/attempts").json()
            assert [a["outcome"] for a in attempts] == ["SUCCESS"]
    for node in range(NODES):
        (closed,) = owner.destinations(node)
        assert (closed["state"], closed["consecutiveFailures"]) == ("closed", 0)
    assert other.destinations(0) == []
