"""The /ui dashboard end to end: Chromium against a real server and a local target.

Each test signs in as a person would, clicks through a screen and saves a screenshot of it
under its temp folder; every tab is confined to the server (see ``browser.open_tab``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tasks_server.api.security import PAGE_CSP
from tests.integration.browser import Tab, chromium, open_tab
from tests.integration.server import ServerProcess, free_port
from tests.target import Step, Target

HOUR_MS = 3_600_000


@dataclass
class Dashboard:
    server: ServerProcess
    target: Target
    http: httpx.Client
    owner_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.owner_id}

    def register(self, path: str, **config: Any) -> str:
        body = {
            "httpRequest": {
                "url": f"{self.target.url}{path}",
                "method": "POST",
                "headers": {"Authorization": "Bearer target-secret"},
                "data": {"hello": "world"},
            },
            "config": {"executionDelay": HOUR_MS, **config},
            "metadata": {"from": "dashboard-test"},
        }
        response = self.http.post("/v1/queues/register", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def state(self, task_id: str) -> str:
        return str(self.http.get(f"/v1/queues/{task_id}", headers=self.headers).json()["state"])

    def wait_state(self, task_id: str, state: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.state(task_id) != state:
            assert time.monotonic() < deadline, f"{task_id} never became {state}"
            time.sleep(0.05)  # polling the API for the state the test waits for


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    workdir = tmp_path_factory.mktemp("dashboard")
    with Target() as target, ServerProcess(workdir, LOG=0) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            owner = http.post("/v1/owners/register", json={"name": "dashboard"}).json()
            yield Dashboard(server, target, http, owner["id"], owner["key"])
        assert "Traceback" not in server.output()


@pytest.fixture
def tab(browser: Browser, dash: Dashboard) -> Iterator[Tab]:
    with open_tab(browser, dash.server.url, viewport={"width": 1280, "height": 860}) as tab:
        yield tab


def sign_in(page: Page, dash: Dashboard, *, auto_refresh: bool = False) -> None:
    page.goto(f"{dash.server.url}/ui")
    page.get_by_label("Owner id").fill(dash.owner_id)
    page.get_by_label("Key").fill(dash.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    page.get_by_label("Auto-refresh").set_checked(auto_refresh)


def rows(page: Page) -> list[str]:
    return page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


def open_task(page: Page, dash: Dashboard, task_id: str) -> None:
    page.goto(f"{dash.server.url}/ui#/tasks/{task_id}")
    expect(page.locator(".view-head code")).to_have_text(task_id)
    expect(page.locator(".facts .badge")).to_be_visible()


def test_page_and_assets_carry_the_csp(dash: Dashboard) -> None:
    for path in ("/ui", "/ui/app.js", "/ui/api.js", "/ui/style.css", "/ui/favicon.svg"):
        response = dash.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert "default-src 'self'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert dash.http.get("/ui/missing.js").status_code == 404


def test_wrong_key_shows_the_api_message(tab: Tab, dash: Dashboard, tmp_path: Path) -> None:
    page = tab.page
    page.goto(f"{dash.server.url}/ui")
    tab.screenshot(tmp_path / "sign-in.png")
    page.get_by_label("Owner id").fill(dash.owner_id)
    page.get_by_label("Key").fill("x" * 64)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-error")).to_have_text("Invalid credentials")
    tab.screenshot(tmp_path / "sign-in-refused.png")
    # Nothing was kept: a reload asks again, and the key never went into a URL.
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert not any("x" * 64 in url for url in tab.requests)


def test_sign_in_keeps_the_key_in_session_storage_only(tab: Tab, dash: Dashboard) -> None:
    page = tab.page
    sign_in(page, dash)
    stored = page.evaluate("sessionStorage.getItem('tasks-server.credentials')")
    assert dash.key in stored
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert not any(dash.key in url for url in tab.requests)
    page.reload()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('tasks-server.credentials')") is None


def test_list_filters_orders_pages_and_refreshes(tab: Tab, dash: Dashboard, tmp_path: Path) -> None:
    page = tab.page
    done = dash.register("/list/done", executionDelay=0)
    dash.wait_state(done, "SUCCESS")
    paused = dash.register("/list/paused")
    assert dash.http.patch(f"/v1/queues/{paused}/pause", headers=dash.headers).status_code == 200
    waiting = [dash.register(f"/list/{n}") for n in range(10)]

    sign_in(page, dash)
    expect(page.locator("tbody tr")).to_have_count(10)
    newest_first = rows(page)
    assert newest_first[0] == waiting[-1]
    tab.screenshot(tmp_path / "list.png")

    page.get_by_label("Direction").select_option("asc")
    expect(page.locator("tbody tr").first).to_have_attribute("data-id", done)
    page.get_by_label("Per page").select_option("25")
    expect(page.locator("tbody tr")).to_have_count(12)
    assert rows(page)[:2] == [done, paused]

    page.get_by_label("Per page").select_option("10")
    expect(page.locator("tbody tr")).to_have_count(10)
    page.get_by_role("button", name="Next →").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    expect(page.locator(".pager")).to_contain_text("11–12")
    assert rows(page) == waiting[-2:]
    page.get_by_role("button", name="← Previous").click()
    expect(page.locator("tbody tr")).to_have_count(10)

    page.get_by_label("State").select_option("SUCCESS")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr .badge")).to_have_text("SUCCESS")
    page.get_by_label("State").select_option("PAUSED")
    expect(page.locator("tbody tr")).to_have_count(1)
    assert rows(page) == [paused]
    page.get_by_label("Order by").select_option("estimateEndAt")
    assert "order=estimateEndAt" in page.url

    page.get_by_label("State").select_option("ERROR")
    expect(page.get_by_text("No ERROR tasks")).to_be_visible()
    tab.screenshot(tmp_path / "list-empty.png")

    # Auto-refresh picks up a task registered meanwhile.
    page.get_by_label("State").select_option("PAUSED")
    page.get_by_label("Auto-refresh").check()
    another = dash.register("/list/another")
    assert dash.http.patch(f"/v1/queues/{another}/pause", headers=dash.headers).status_code == 200
    expect(page.locator("tbody tr")).to_have_count(2, timeout=12_000)

    for task_id in [done, paused, another, *waiting]:
        dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)


def test_detail_shows_redacted_config_and_attempts(
    tab: Tab, dash: Dashboard, tmp_path: Path
) -> None:
    page = tab.page
    dash.target.script("/detail", Step(status=503, body=b"busy"), Step(body=b"hello back"))
    task_id = dash.register("/detail", executionDelay=0, retry=1, retryInterval=1)
    dash.wait_state(task_id, "SUCCESS")

    sign_in(page, dash)
    page.get_by_role("link", name=task_id).click()
    expect(page.locator(".view-head code")).to_have_text(task_id)
    expect(page.locator(".facts .badge")).to_have_text("SUCCESS")
    attempts = page.locator(".timeline > li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("#1")
    expect(attempts.nth(0).locator(".badge")).to_have_text("FAILURE")
    expect(attempts.nth(0)).to_contain_text("HTTP 503")
    expect(attempts.nth(0).locator(".attempt-meta")).to_contain_text("ms late")
    expect(attempts.nth(1).locator(".badge")).to_have_text("SUCCESS")
    expect(attempts.nth(1).locator(".attempt-meta")).to_contain_text("took")
    config = page.locator("pre.config")
    expect(config).to_contain_text('"Authorization": "***"')
    expect(config).not_to_contain_text("target-secret")
    page.get_by_text("Last response body").click()
    expect(page.locator(".card details pre").first).to_have_text("hello back")
    tab.screenshot(tmp_path / "detail.png")

    page.get_by_role("link", name="← All tasks").click()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)


def test_transport_error_shows_in_the_timeline(tab: Tab, dash: Dashboard, tmp_path: Path) -> None:
    page = tab.page
    body = {
        "httpRequest": {"url": f"http://127.0.0.1:{free_port()}/nobody", "method": "GET"},
        "config": {"executionDelay": 0},
    }
    response = dash.http.post("/v1/queues/register", json=body, headers=dash.headers)
    task_id = response.json()["id"]
    dash.wait_state(task_id, "ERROR")
    sign_in(page, dash)
    open_task(page, dash, task_id)
    expect(page.locator(".facts .badge")).to_have_text("ERROR")
    expect(page.locator(".timeline .badge")).to_have_text("TRANSPORT")
    expect(page.locator(".attempt-error")).not_to_be_empty()
    tab.screenshot(tmp_path / "detail-error.png")
    dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)


def click_action(page: Page, name: str) -> None:
    page.locator(f'button[data-action="{name}"]').click()


def test_each_action(tab: Tab, dash: Dashboard, tmp_path: Path) -> None:
    page = tab.page
    task_id = dash.register("/actions")
    sign_in(page, dash)
    open_task(page, dash, task_id)
    badge = page.locator(".facts .badge")
    expect(badge).to_have_text("RUNNING")
    expect(page.locator('button[data-action="resume"]')).to_be_disabled()
    tab.screenshot(tmp_path / "actions.png")

    click_action(page, "pause")
    expect(page.locator(".notice")).to_have_text("Paused.×")
    expect(badge).to_have_text("PAUSED")
    assert dash.state(task_id) == "PAUSED"

    click_action(page, "resume")
    expect(badge).to_have_text("RUNNING")
    assert dash.state(task_id) == "RUNNING"

    click_action(page, "execute")
    dash.target.wait(lambda: len(dash.target.hits_for("/actions")) == 1)
    dash.wait_state(task_id, "SUCCESS")
    page.get_by_role("button", name="Refresh").click()
    expect(badge).to_have_text("SUCCESS")
    expect(page.locator(".timeline > li")).to_have_count(1)

    click_action(page, "replay")
    dash.target.wait(lambda: len(dash.target.hits_for("/actions")) == 2)
    dash.wait_state(task_id, "SUCCESS")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator(".timeline > li")).to_have_count(2)
    expect(page.locator(".timeline > li").nth(1)).to_contain_text("#2")

    # Revoke asks first; Cancel leaves the task alone.
    other = dash.register("/actions/other")
    open_task(page, dash, other)
    click_action(page, "revoke")
    expect(page.locator("#confirm")).to_be_visible()
    tab.screenshot(tmp_path / "confirm.png")
    page.get_by_role("button", name="Cancel").click()
    assert dash.state(other) == "RUNNING"
    click_action(page, "revoke")
    page.locator("#confirm-ok").click()
    expect(badge).to_have_text("REVOKED")
    assert dash.state(other) == "REVOKED"

    click_action(page, "delete")
    page.keyboard.press("Escape")  # the dialog closes with Escape: nothing happens
    expect(page.locator("#confirm")).to_be_hidden()
    click_action(page, "delete")
    page.locator("#confirm-ok").click()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text(f"Task {other} deleted.")
    assert dash.http.get(f"/v1/queues/{other}", headers=dash.headers).status_code == 404
    dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)


def test_a_refused_action_shows_the_api_message(tab: Tab, dash: Dashboard, tmp_path: Path) -> None:
    page = tab.page
    task_id = dash.register("/refused")
    sign_in(page, dash)
    open_task(page, dash, task_id)
    # Someone else revokes it meanwhile; the page still offers Pause, and the server says no.
    assert dash.http.patch(f"/v1/queues/{task_id}/revoke", headers=dash.headers).status_code == 200
    click_action(page, "pause")
    expect(page.locator(".notice")).to_contain_text(
        "Pause refused: Only a RUNNING task can be paused; this one is REVOKED"
    )
    expect(page.locator(".facts .badge")).to_have_text("REVOKED")  # shown as it is now
    tab.screenshot(tmp_path / "refused.png")
    dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)


def test_unknown_task_and_key_revoked_meanwhile(tab: Tab, dash: Dashboard) -> None:
    page = tab.page
    sign_in(page, dash)
    page.goto(f"{dash.server.url}/ui#/tasks/{'0' * 26}")
    expect(page.locator(".box-error")).to_contain_text("Not found")
    # A key that stops working signs the tab out with the server's message.
    page.evaluate(
        """() => {
          const saved = JSON.parse(sessionStorage.getItem('tasks-server.credentials'));
          sessionStorage.setItem('tasks-server.credentials',
            JSON.stringify({...saved, key: 'y'.repeat(64)}));
        }"""
    )
    page.goto(f"{dash.server.url}/ui#/tasks")
    expect(page.locator(".notice")).to_contain_text("Signed out: Invalid credentials")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_narrow_screen_and_keyboard(browser: Browser, dash: Dashboard, tmp_path: Path) -> None:
    task_id = dash.register("/narrow")
    with open_tab(browser, dash.server.url, viewport={"width": 390, "height": 800}) as tab:
        page = tab.page
        page.goto(f"{dash.server.url}/ui")
        # Keyboard only: tab into the form, type, submit with Enter.
        page.get_by_label("Owner id").focus()
        page.keyboard.type(dash.owner_id)
        page.keyboard.press("Tab")
        page.keyboard.type(dash.key)
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name=task_id)).to_be_visible()
        page.get_by_label("Auto-refresh").uncheck()
        tab.screenshot(tmp_path / "list-narrow.png")
        page.get_by_role("link", name=task_id).focus()
        page.keyboard.press("Enter")
        expect(page.locator(".view-head code")).to_have_text(task_id)
        tab.screenshot(tmp_path / "detail-narrow.png")
    dash.http.delete(f"/v1/queues/{task_id}", headers=dash.headers)
