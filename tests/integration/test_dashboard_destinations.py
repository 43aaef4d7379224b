"""The dashboard's destinations screen (SPEC §18.1): an open circuit shown and reset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tasks_server.api.security import PAGE_CSP
from tests.integration.browser import chromium, open_tab
from tests.integration.server import ServerProcess, free_port
from tests.integration.test_dashboard import Dashboard, sign_in
from tests.polling import eventually
from tests.target import Target


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    workdir = tmp_path_factory.mktemp("dashboard-destinations")
    settings = {"LOG": 0, "CIRCUIT_FAILURES": 1, "CIRCUIT_OPEN_MS": 600_000}
    with Target() as target, ServerProcess(workdir, **settings) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            owner = http.post("/v1/owners/register", json={"name": "dashboard"}).json()
            yield Dashboard(server, target, http, owner["id"], owner["key"])
        assert "Traceback" not in server.output()


def test_an_open_circuit_is_listed_and_reset(
    browser: Browser, dash: Dashboard, tmp_path: Path
) -> None:
    assert dash.http.get("/ui/destinations.js").headers["content-security-policy"] == PAGE_CSP
    with open_tab(browser, dash.server.url, viewport={"width": 1280, "height": 860}) as tab:
        page = tab.page
        sign_in(page, dash)
        expect(page.locator("#filter-outcome option[value=EXPIRED]")).to_have_count(1)
        page.get_by_role("link", name="Destinations").click()
        expect(page.get_by_text("No failing destinations")).to_be_visible()

        port = free_port()  # nothing listens: the attempt is refused and the circuit opens
        body = {"httpRequest": {"url": f"http://127.0.0.1:{port}/x", "method": "GET"}}
        created = dash.http.post("/v1/queues/register", json=body, headers=dash.headers)
        assert created.status_code == 201, created.text

        def opened() -> bool:
            listed = dash.http.get("/v1/destinations", headers=dash.headers).json()
            return bool(listed) and listed[0]["state"] == "open"

        eventually(opened, 30, "the circuit open")
        page.get_by_role("button", name="Refresh").click()
        row = page.locator("table.destinations tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator(".badge")).to_have_text("open")
        expect(row).to_contain_text(f"http://127.0.0.1:{port}")
        page.screenshot(path=tmp_path / "destinations-open.png")
        row.get_by_role("button", name=f"Reset http://127.0.0.1:{port}").click()
        expect(page.get_by_text("is closed, its waiting tasks go now")).to_be_visible()
        expect(row.locator(".badge")).to_have_text("closed")
        expect(row.get_by_role("button")).to_have_count(0)
