"""Fixtures shared by every test: settings on a temp database, the app with its lifespan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tasks_server.app import create_app
from tasks_server.services import Services
from tasks_server.settings import Settings
from tests import processes
from tests.postgres import Databases, local_server, run_apart

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's .env or environment settings."""
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_suite() -> Iterator[None]:
    """A process a test started and never stopped is stopped here, and reported."""
    yield
    left = processes.stop_all()
    assert not left, f"tests left these running (now stopped): {left}"


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
    """A PostgreSQL server for the whole session (TEST_DATABASE_URL, or one started here)."""
    existing = os.environ.get("TEST_DATABASE_URL")
    if existing:
        databases = Databases(existing)
        run_apart(databases.prepare())
        try:
            yield databases
        finally:
            run_apart(databases.drop_template())
        return
    with local_server() as url:
        databases = Databases(url)
        run_apart(databases.prepare())
        yield databases


@pytest.fixture
def postgres_url(postgres_databases: Databases) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    url = run_apart(postgres_databases.create())
    try:
        yield url
    finally:
        run_apart(postgres_databases.drop(url))


@pytest.fixture
def store_kind() -> str:
    """Which store the settings select; tests/api runs on both (see tests/api/conftest.py)."""
    return "sqlite"


@pytest.fixture
def make_settings(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> MakeSettings:
    database_url = request.getfixturevalue("postgres_url") if store_kind == "postgres" else None

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "path_sqlite": tmp_path / "db" / "tasks.db",
            "database_url": database_url,
            "log": False,
            "cipher_key": "test-cipher-key",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(settings) as c:
        yield c


class open_client:
    """An httpx client over ASGI with the app's lifespan running."""

    def __init__(self, settings: Settings, client_addr: str = "127.0.0.1") -> None:
        self.app = create_app(settings)
        self.client_addr = client_addr

    async def __aenter__(self) -> httpx.AsyncClient:
        self._manager = LifespanManager(self.app)
        await self._manager.__aenter__()
        self.services: Services = self._manager._state["services"]
        transport = httpx.ASGITransport(app=self._manager.app, client=(self.client_addr, 5000))
        self._client = httpx.AsyncClient(transport=transport, base_url="http://tasks")
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._manager.__aexit__(*exc)


async def register_owner(client: httpx.AsyncClient, name: str = "owner-one") -> dict[str, str]:
    """Register an owner; return the auth headers for it."""
    response = await client.post("/v1/owners/register", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return {"Authorization": f"Bearer {body['key']}", "X-Tasks-Owner-Id": body["id"]}
