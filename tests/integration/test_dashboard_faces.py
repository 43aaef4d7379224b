"""The dashboard's faces of SPEC §19.4 in Chromium: the overview's charts, lists that tell
tasks apart with filters, bulk actions asked first, create forms that show the API's errors
beside their fields, exact times, pretty JSON, honest empty texts, and a phone layout that
never scrolls sideways. Each test saves screenshots under its temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration import test_dashboard as base
from tests.integration.browser import Tab, open_tab
from tests.integration.server import free_port
from tests.integration.test_dashboard import Dashboard, open_task, rows, sign_in
from tests.target import Step

# The dashboard module's fixtures: a browser, a server with an owner, a tab.
browser, dash, tab = base.browser, base.dash, base.tab

PHONE = {"width": 390, "height": 844}


def register(dash: Dashboard, url: str, **extra: Any) -> str:
    body = {"httpRequest": {"url": url, "method": "PUT"}, **extra}
    response = dash.http.post("/v1/queues/register", json=body, headers=dash.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the page scrolls {width} px sideways"


@pytest.fixture
def clean(dash: Dashboard) -> Iterator[None]:
    """Every task of the owner is deleted after the test (lists of later tests start empty)."""
    yield
    listed = dash.http.get("/v1/queues", params={"limit": 1000}, headers=dash.headers).json()
    for task in listed:
        dash.http.delete(f"/v1/queues/{task['id']}", headers=dash.headers)


def test_overview_draws_the_stats_as_svg(
    browser: Browser, tab: Tab, dash: Dashboard, tmp_path: Path, clean: None
) -> None:
    dash.target.script("/json", Step(body=b'{"ok": true, "items": [1, 2]}'))
    done = register(dash, f"{dash.target.url}/json")
    refused = f"http://127.0.0.1:{free_port()}"
    failed = register(dash, f"{refused}/down")
    dash.wait_state(done, "SUCCESS")
    dash.wait_state(failed, "ERROR")
    page = tab.page
    sign_in(page, dash)
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    chart = page.locator("#chart-attempts svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(2)  # this minute: SUCCESS and TRANSPORT
    expect(page.locator("#chart-attempts .legend")).to_contain_text("SUCCESS 1")
    expect(page.locator("#chart-attempts .legend")).to_contain_text("TRANSPORT 1")
    expect(page.locator("#chart-lateness .facts")).to_contain_text("Attempts2")
    expect(page.locator("#chart-failing")).to_contain_text(refused)
    expect(page.locator("#chart-states")).to_contain_text("SUCCESS")
    expect(page.locator("#chart-states")).to_contain_text("ERROR")
    tab.screenshot(tmp_path / "overview.png")
    page.get_by_label("Window", exact=True).select_option("24h")
    assert "window=24h" in page.url
    expect(chart.locator("rect")).to_have_count(2)

    with open_tab(browser, dash.server.url, viewport=PHONE) as phone:
        sign_in(phone.page, dash)
        phone.page.goto(f"{dash.server.url}/ui#/overview")
        expect(phone.page.locator("#chart-attempts svg.chart")).to_be_visible()
        no_sideways_scroll(phone.page)
        phone.screenshot(tmp_path / "overview-phone.png")


def test_lists_show_request_labels_and_exact_times_and_filter(
    browser: Browser, tab: Tab, dash: Dashboard, tmp_path: Path, clean: None
) -> None:
    later = {"config": {"executionDelay": 3_600_000}}
    url = f"{dash.target.url}/list?token=secret-value"
    prod = register(dash, url, labels={"env": "prod", "team": "billing"}, **later)
    dev = register(dash, url, labels={"env": "dev"}, **later)
    ended = register(dash, f"{dash.target.url}/done", labels={"env": "prod"})
    dash.wait_state(ended, "SUCCESS")
    page = tab.page
    sign_in(page, dash)
    expect(page.locator("tbody tr")).to_have_count(3)
    row = page.locator(f'tbody tr[data-id="{prod}"]')
    expect(row.locator("td[data-label='Request'] .method")).to_have_text("PUT")
    expect(row.locator("td[data-label='Request'] .url")).to_contain_text("token=***")
    expect(row).not_to_contain_text("secret-value")
    expect(row.locator(".tag.label")).to_have_text(["env=prod", "team=billing"])
    # The exact time is on the page, not only in a tooltip.
    exact = row.locator("td[data-label='Created'] time .exact")
    expect(exact).to_be_visible()
    assert any(ch.isdigit() for ch in exact.inner_text())
    tab.screenshot(tmp_path / "list.png")

    page.get_by_label("Label").fill("env:prod")
    page.get_by_label("Label").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(2)
    assert set(rows(page)) == {prod, ended}
    page.get_by_label("Last outcome").select_option("SUCCESS")
    expect(page.locator("tbody tr")).to_have_count(1)
    assert rows(page) == [ended]
    page.get_by_label("Status code").fill("503")
    page.get_by_label("Status code").press("Enter")
    expect(page.get_by_text("No task matches these filters")).to_be_visible()
    tab.screenshot(tmp_path / "list-filtered-empty.png")
    page.get_by_label("Label").fill("bad")
    page.get_by_label("Label").press("Enter")
    expect(page.locator(".box-error")).to_contain_text("label")  # the API's own words
    assert dev not in rows(page)

    with open_tab(browser, dash.server.url, viewport=PHONE) as phone:
        sign_in(phone.page, dash)
        expect(phone.page.locator("tbody tr")).to_have_count(3)
        no_sideways_scroll(phone.page)
        phone.screenshot(tmp_path / "list-phone.png")
        open_task(phone.page, dash, prod)
        no_sideways_scroll(phone.page)
        phone.screenshot(tmp_path / "detail-phone.png")


def test_bulk_actions_ask_first(tab: Tab, dash: Dashboard, tmp_path: Path, clean: None) -> None:
    later = {"config": {"executionDelay": 3_600_000}}
    first, second, kept = (register(dash, dash.target.url, **later) for _ in range(3))
    refused = f"http://127.0.0.1:{free_port()}/down"
    failed = register(dash, refused)
    dash.wait_state(failed, "ERROR")
    page = tab.page
    sign_in(page, dash)
    expect(page.locator("tbody tr")).to_have_count(4)
    revoke = page.locator('button[data-bulk="revoke"]')
    expect(revoke).to_be_disabled()
    page.get_by_label(f"Select {first}").check()
    page.get_by_label(f"Select {second}").check()
    expect(page.locator(".bulk-count")).to_have_text("2 selected")
    revoke.click()
    expect(page.locator("#confirm")).to_contain_text("Revoke 2 selected task(s)?")
    tab.screenshot(tmp_path / "bulk-confirm.png")
    page.get_by_role("button", name="Cancel").click()
    assert dash.state(first) == "RUNNING"
    revoke.click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".notice")).to_contain_text("Revoke selected: 2 done")
    assert (dash.state(first), dash.state(second), dash.state(kept)) == (
        "REVOKED",
        "REVOKED",
        "RUNNING",
    )
    page.locator('button[data-bulk="replay"]').click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".notice")).to_contain_text("Replay failed: 1 done")
    page.get_by_label(f"Select {kept}").check()
    page.locator('button[data-bulk="delete"]').click()
    page.locator("#confirm-ok").click()
    expect(page.locator(f'tbody tr[data-id="{kept}"]')).to_have_count(0)
    tab.screenshot(tmp_path / "bulk-done.png")


def test_create_forms_show_the_apis_errors_on_their_fields(
    tab: Tab, dash: Dashboard, tmp_path: Path, clean: None
) -> None:
    page = tab.page
    sign_in(page, dash)
    page.get_by_role("link", name="New task").click()
    expect(page.get_by_role("heading", name="New task")).to_be_visible()
    page.get_by_label("URL").fill("ftp://example.com/x")
    page.get_by_label("Labels").fill("bad key=v")
    page.get_by_role("button", name="New task").click()
    url_error = page.locator('[data-path="httpRequest.url"] .field-error')
    expect(url_error).to_be_visible()
    expect(page.locator('[data-path="labels"] .field-error')).to_be_visible()
    expect(page.locator('[data-path="httpRequest.method"] .field-error')).to_be_hidden()
    tab.screenshot(tmp_path / "new-task-errors.png")

    page.get_by_label("URL").fill(f"{dash.target.url}/made")
    page.get_by_label("Labels").fill("made=form")
    page.get_by_label("Body").fill('{"made": "by the form"}')
    page.get_by_label("Run after (seconds)").fill("3600")
    page.get_by_role("button", name="New task").click()
    expect(page.locator(".notice")).to_contain_text("registered")
    expect(page.locator(".labels")).to_contain_text("made=form")
    expect(page.locator("pre.config")).to_contain_text('"made": "by the form"')

    page.goto(f"{dash.server.url}/ui#/schedules/new")
    page.get_by_label("Cron").fill("not a cron")
    page.get_by_label("URL").fill(f"{dash.target.url}/tick")
    page.get_by_role("button", name="New schedule").click()
    expect(page.locator('[data-path="cron"] .field-error')).to_be_visible()
    tab.screenshot(tmp_path / "new-schedule-errors.png")
    page.get_by_label("Cron").fill("@daily")
    page.get_by_label("Labels").fill("kind=nightly")
    page.get_by_role("button", name="New schedule").click()
    expect(page.locator(".notice")).to_contain_text("created")
    schedule_id = page.url.rsplit("/", 1)[1]
    page.goto(f"{dash.server.url}/ui#/schedules")
    expect(page.locator(f'tr[data-id="{schedule_id}"] .tag.label')).to_have_text("kind=nightly")
    dash.http.delete(f"/v1/schedules/{schedule_id}", headers=dash.headers)


def test_detail_says_why_there_is_no_attempt_and_pretty_prints_json(
    tab: Tab, dash: Dashboard, tmp_path: Path, clean: None
) -> None:
    later = {"config": {"executionDelay": 3_600_000}}
    paused = register(dash, dash.target.url, **later)
    revoked = register(dash, dash.target.url, **later)
    dash.http.patch(f"/v1/queues/{paused}/pause", headers=dash.headers)
    dash.http.patch(f"/v1/queues/{revoked}/revoke", headers=dash.headers)
    dash.target.script("/pretty", Step(body=b'{"a":1,"b":[1,2]}'))
    answered = register(dash, f"{dash.target.url}/pretty")
    dash.wait_state(answered, "SUCCESS")
    page = tab.page
    sign_in(page, dash)
    open_task(page, dash, paused)
    expect(page.locator(".state-empty-inline")).to_contain_text("paused before it was due")
    tab.screenshot(tmp_path / "detail-paused.png")
    open_task(page, dash, revoked)
    expect(page.locator(".state-empty-inline")).to_contain_text("revoked before it was due")
    open_task(page, dash, answered)
    page.get_by_text("Last response body").click()
    body = page.locator(".card details pre").first
    expect(body).to_have_text('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}')
    tab.screenshot(tmp_path / "detail-json.png")
