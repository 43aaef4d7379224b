"""/swagger in Chromium with the network limited to the server: the packaged viewer renders
every operation, under the page's CSP, and the credentials form authorizes its calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tasks_server.api.security import SWAGGER_CSP
from tests.integration.browser import chromium, open_tab
from tests.integration.server import ServerProcess

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("swagger"), LOG=0, SWAGGER_UI=1) as server:
        yield server


def test_swagger_renders_offline_and_authorizes(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operations = sum(
        1 for item in document["paths"].values() for method in item if method in METHODS
    )
    owner = httpx.post(f"{server.url}/v1/owners/register", json={"name": "swagger"}).json()

    with open_tab(browser, server.url, viewport={"width": 1280, "height": 900}) as tab:
        page = tab.page
        response = page.goto(f"{server.url}/swagger")
        assert response is not None and response.headers["content-security-policy"] == SWAGGER_CSP
        expect(page.locator(".opblock")).to_have_count(operations)
        expect(page.locator("#operations-queues-registerQueue")).to_be_visible()
        expect(page.locator(".info .title")).to_contain_text("Tasks Server")
        tab.screenshot(tmp_path / "swagger.png")

        page.locator("#credentials input[name=ownerId]").fill(owner["id"])
        page.locator("#credentials input[name=key]").fill(owner["key"])
        page.get_by_role("button", name="Use these credentials").click()
        expect(page.locator("#credentials-status")).to_contain_text(owner["id"])

        listing = page.locator("#operations-queues-listQueues")
        listing.locator(".opblock-summary").click()
        listing.get_by_role("button", name="Try it out").click()
        listing.get_by_role("button", name="Execute").click()
        status = listing.locator(".live-responses-table .response .response-col_status")
        expect(status).to_have_text("200")
        tab.screenshot(tmp_path / "swagger-call.png")
    assert all(not url.startswith("data:") or "image" in url for url in tab.requests)
