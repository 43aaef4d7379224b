"""The /ui dashboard end to end: Chromium against a real server and a local target.

Each test signs in as a person would, clicks through a screen and saves a screenshot of it
under its temp folder; every tab is confined to the server (see ``browser.open_tab``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

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

    def create_schedule(self, path: str, cron: str, **extra: Any) -> str:
        body = {
            "cron": cron,
            "httpRequest": {
                "url": f"{self.target.url}{path}",
                "method": "POST",
                "headers": {"Authorization": "Bearer target-secret"},
                "data": {"tick": True},
            },
            "metadata": {"from": "dashboard-test"},
            **extra,
        }
        response = self.http.post("/v1/schedules", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def fired(self, schedule_id: str) -> list[str]:
        """The ids of the tasks a schedule registered."""
        query: dict[str, str | int] = {"scheduleId": schedule_id, "limit": 1000}
        response = self.http.get("/v1/queues", params=query, headers=self.headers)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()]

    def wait_fired(self, schedule_id: str, more_than: int, timeout: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(fired := self.fired(schedule_id)) <= more_than:
            assert time.monotonic() < deadline, f"{schedule_id} fired no more than {more_than}"
            time.sleep(0.05)  # polling the API for the fire the test waits for
        return fired

    def forget_schedules(self) -> None:
        """Deletes every schedule and the tasks they registered, so later tests see none."""
        listed = self.http.get("/v1/schedules", params={"limit": 1000}, headers=self.headers)
        for schedule in listed.json():
            self.http.delete(f"/v1/schedules/{schedule['id']}", headers=self.headers)
            for task_id in self.fired(schedule["id"]):
                self.http.delete(f"/v1/queues/{task_id}", headers=self.headers)

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
    scripts = [
        f"/ui/{name}.js" for name in ("app", "api", "dom", "frame", "tasks", "schedules", "batches")
    ]
    for path in ("/ui", *scripts, "/ui/style.css", "/ui/favicon.svg"):
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


def test_a_failed_list_load_offers_a_retry_that_loads_it(
    tab: Tab, dash: Dashboard, tmp_path: Path
) -> None:
    page = tab.page
    task_id = dash.register("/list/retry")
    sign_in(page, dash)
    expect(page.locator("tbody tr")).to_have_count(1)
    # The next list read fails as a proxy in front of the server might fail it.
    page.route(
        "**/v1/queues?*",
        lambda route: route.fulfill(
            status=502, content_type="application/json", body='{"message": "Bad gateway"}'
        ),
    )
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator(".box-error")).to_contain_text("Bad gateway")
    expect(page.locator(".pager button")).to_have_count(0)  # no pages of a list not shown
    expect(page.locator(".list-body")).not_to_have_attribute("aria-busy", "true")
    tab.screenshot(tmp_path / "list-error.png")
    page.unroute("**/v1/queues?*")
    page.locator(".box-error").get_by_role("button", name="Try again").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    assert rows(page) == [task_id]
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
        "Pause refused: Only a RUNNING or WAITING task can be paused; this one is REVOKED"
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


# --- schedules (SPEC §11.1) ---------------------------------------------------------------

EVERY_2S = "*/2 * * * * *"


@pytest.fixture
def no_schedules(dash: Dashboard) -> Iterator[None]:
    dash.forget_schedules()
    yield
    dash.forget_schedules()


def open_schedules(page: Page) -> None:
    page.get_by_role("link", name="Schedules", exact=True).click()
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
    expect(page.locator("#nav a[aria-current=page]")).to_have_text("Schedules")


def test_schedules_empty_and_loading_states(
    tab: Tab, dash: Dashboard, no_schedules: None, tmp_path: Path
) -> None:
    page = tab.page
    sign_in(page, dash)
    # Hold the list's request to see the loading state, then let it through.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/v1/schedules?*", hold)
    open_schedules(page)
    expect(page.locator(".box-loading")).to_have_text("Loading schedules…")
    tab.screenshot(tmp_path / "schedules-loading.png")
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/v1/schedules?*", hold)
    expect(page.get_by_text("No schedules yet")).to_be_visible()
    expect(page.locator(".box-empty")).to_contain_text("POST /v1/schedules")
    tab.screenshot(tmp_path / "schedules-empty.png")
    page.get_by_role("link", name="Tasks", exact=True).click()
    expect(page.locator("#nav a[aria-current=page]")).to_have_text("Tasks")


def test_schedules_list_detail_fired_tasks_and_actions(
    tab: Tab, dash: Dashboard, no_schedules: None, tmp_path: Path
) -> None:
    page = tab.page
    ticking = dash.create_schedule("/schedule/tick", EVERY_2S)
    weekly = dash.create_schedule(
        "/schedule/report", "30 9 * * 1-5", timezone="Europe/Paris", metadata=None
    )
    assert dash.http.patch(f"/v1/schedules/{weekly}/pause", headers=dash.headers).is_success
    first = dash.wait_fired(ticking, 0)

    sign_in(page, dash)
    open_schedules(page)
    rows_ = page.locator("tbody tr")
    expect(rows_).to_have_count(2)
    assert rows(page) == [ticking, weekly]  # oldest first, as the API lists them
    tick_row, weekly_row = rows_.nth(0), rows_.nth(1)
    expect(tick_row.locator(".badge")).to_have_text("ACTIVE")
    expect(tick_row.locator(".cron")).to_have_text(EVERY_2S)
    expect(tick_row.locator(".zone")).to_have_text("UTC")
    expect(tick_row.locator("td[data-label='Next run'] time")).to_be_visible()
    expect(tick_row.locator("td[data-label='Last task'] a")).to_have_attribute(
        "href", re.compile(r"^#/tasks/[0-9A-Z]{26}$")
    )
    expect(weekly_row.locator(".badge")).to_have_text("PAUSED")
    expect(weekly_row.locator(".zone")).to_have_text("Europe/Paris")
    expect(weekly_row.locator("td[data-label='Next run']")).to_have_text("paused")
    expect(weekly_row.locator("td[data-label='Last task']")).to_have_text("—")
    tab.screenshot(tmp_path / "schedules.png")

    # Paging: the second page of one.
    page.goto(f"{dash.server.url}/ui#/schedules?limit=10&offset=1")
    expect(rows_).to_have_count(1)
    assert rows(page) == [weekly]
    expect(page.locator(".pager")).to_contain_text("2–2")
    page.get_by_role("button", name="← Previous").click()
    expect(rows_).to_have_count(2)

    # The detail: summary, redacted request, and the tasks it fired as they come.
    page.get_by_role("link", name=ticking).click()
    expect(page.locator(".view-head code")).to_have_text(ticking)
    expect(page.locator(".facts .badge")).to_have_text("ACTIVE")
    expect(page.locator(".facts .cron")).to_have_text(EVERY_2S)
    expect(page.locator(".request-line")).to_contain_text("/schedule/tick")
    expect(page.locator(".metadata")).to_have_text("from: dashboard-test")
    config = page.locator("pre.config")
    expect(config).to_contain_text('"Authorization": "***"')
    expect(config).not_to_contain_text("target-secret")
    fired_rows = page.locator(".fired-tasks tbody tr")
    expect(fired_rows.first).to_be_visible()
    assert first[0] in page.locator(".fired-tasks tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    page.get_by_label("Auto-refresh").check()
    seen = fired_rows.count()
    expect(fired_rows).not_to_have_count(seen, timeout=12_000)  # auto-refresh shows new fires
    page.get_by_label("Auto-refresh").uncheck()
    dash.target.wait(lambda: len(dash.target.hits_for("/schedule/tick")) >= 1)
    tab.screenshot(tmp_path / "schedule-detail.png")

    # Through to a fired task and back.
    task_id = fired_rows.last.get_attribute("data-id")
    fired_rows.last.get_by_role("link").click()
    expect(page.locator(".view-head code")).to_have_text(str(task_id))
    expect(page.locator("#nav a[aria-current=page]")).to_have_text("Tasks")
    page.locator(".facts").get_by_role("link", name=ticking).click()
    expect(page.locator(".view-head code")).to_have_text(ticking)

    # Pause: the page says so, and no task fires any more.
    click_action(page, "pause")
    expect(page.locator(".notice")).to_contain_text("Paused: it fires no more until resumed.")
    expect(page.locator(".facts .badge")).to_have_text("PAUSED")
    expect(page.locator('button[data-action="pause"]')).to_be_disabled()
    expect(page.locator(".facts dd").nth(4)).to_have_text("paused")
    assert dash.http.get(f"/v1/schedules/{ticking}", headers=dash.headers).json()["state"] == (
        "PAUSED"
    )
    count = len(dash.fired(ticking))
    deadline = time.monotonic() + 5  # two and a half fire periods
    while time.monotonic() < deadline:
        assert len(dash.fired(ticking)) == count, "a paused schedule fired"
        time.sleep(0.1)  # watching over a window for a fire that must not come
    tab.screenshot(tmp_path / "schedule-paused.png")

    # Resume: it fires again.
    click_action(page, "resume")
    expect(page.locator(".notice")).to_contain_text("Resumed")
    expect(page.locator(".facts .badge")).to_have_text("ACTIVE")
    dash.wait_fired(ticking, count)

    # Delete asks first; Cancel (and Escape) leave it alone. Its tasks stay.
    click_action(page, "delete")
    expect(page.locator("#confirm")).to_contain_text("the tasks it registered stay")
    tab.screenshot(tmp_path / "schedule-confirm.png")
    page.get_by_role("button", name="Cancel").click()
    click_action(page, "delete")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    assert dash.http.get(f"/v1/schedules/{ticking}", headers=dash.headers).status_code == 200
    click_action(page, "delete")
    page.locator("#confirm-ok").click()
    expect(page.get_by_role("heading", name="Schedules", exact=True)).to_be_visible()
    expect(page.locator(".notice")).to_contain_text(f"Schedule {ticking} deleted")
    expect(rows_).to_have_count(1)
    assert dash.http.get(f"/v1/schedules/{ticking}", headers=dash.headers).status_code == 404
    assert dash.fired(ticking), "the tasks it registered stay"
    for fired_id in dash.fired(ticking):
        dash.http.delete(f"/v1/queues/{fired_id}", headers=dash.headers)


def test_schedule_deleted_behind_the_page(
    tab: Tab, dash: Dashboard, no_schedules: None, tmp_path: Path
) -> None:
    page = tab.page
    schedule_id = dash.create_schedule("/schedule/gone", "@daily")
    sign_in(page, dash)
    page.goto(f"{dash.server.url}/ui#/schedules/{schedule_id}")
    expect(page.locator(".facts .badge")).to_have_text("ACTIVE")
    expect(page.locator(".fired")).to_contain_text("None yet: it fires")
    tab.screenshot(tmp_path / "schedule-new.png")
    assert dash.http.delete(f"/v1/schedules/{schedule_id}", headers=dash.headers).is_success
    click_action(page, "pause")
    expect(page.locator(".notice")).to_contain_text(
        "Pause refused: Not found: no such schedule for this owner"
    )
    expect(page.locator(".box-error")).to_contain_text("Not found: no such schedule for this owner")
    expect(page.locator(".box-error button")).to_have_count(0)  # nothing to try again
    tab.screenshot(tmp_path / "schedule-error.png")
    page.get_by_role("link", name="← All schedules").click()
    expect(page.get_by_text("No schedules yet")).to_be_visible()


def test_schedules_on_a_narrow_screen(
    browser: Browser, dash: Dashboard, no_schedules: None, tmp_path: Path
) -> None:
    schedule_id = dash.create_schedule("/schedule/narrow", "0 9 * * 1-5", timezone="Europe/Paris")
    with open_tab(browser, dash.server.url, viewport={"width": 390, "height": 800}) as tab:
        page = tab.page
        sign_in(page, dash)
        open_schedules(page)
        expect(page.get_by_role("link", name=schedule_id)).to_be_visible()
        tab.screenshot(tmp_path / "schedules-narrow.png")
        page.get_by_role("link", name=schedule_id).click()
        expect(page.locator(".view-head code")).to_have_text(schedule_id)
        tab.screenshot(tmp_path / "schedule-detail-narrow.png")
