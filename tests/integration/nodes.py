"""Nodes of `tasks-server serve` sharing one PostgreSQL database, for the multi-node tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess
from tests.postgres import Databases, run_apart


@dataclass
class PostgresNodes:
    """Nodes serving one PostgreSQL database, each with a client."""

    database_url: str
    servers: list[ServerProcess]
    clients: list[httpx.Client]


@contextlib.contextmanager
def postgres_nodes(
    workdir: Path, databases: Databases, count: int, **env: object
) -> Iterator[PostgresNodes]:
    """`count` nodes started one after another on a new database (one cipher key, logs on,
    `env` added), with a client each; on every path the clients closed, every node started
    stopped and the database dropped."""
    url = run_apart(databases.create())
    env = {"DATABASE_URL": url, "CIPHER_KEY": "one-key-for-every-node", "LOG": "true", **env}
    servers = [ServerProcess(workdir / f"node-{n}", **env) for n in range(count)]
    clients: list[httpx.Client] = []
    try:
        for server in servers:
            server.workdir.mkdir(parents=True)
            server.start()
            clients.append(httpx.Client(base_url=server.url, timeout=30))
        yield PostgresNodes(url, servers, clients)
    finally:
        for client in clients:
            client.close()
        for server in servers:
            if server.process is not None:
                server.stop()
        run_apart(databases.drop(url))
