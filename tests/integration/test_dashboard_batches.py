"""The dashboard's workflow screens (SPEC §17.4) in Chromium: a batch drawn as a graph whose
nodes open their tasks, a task's dependencies and dependents, WAITING in the filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.integration import test_dashboard as dashboard
from tests.integration.browser import Tab
from tests.integration.test_dashboard import Dashboard, sign_in

# The dashboard module's fixtures: a browser, a server with an owner, a tab.
browser, dash, tab = dashboard.browser, dashboard.dash, dashboard.tab

HOUR_MS = 3_600_000


def _batch(dash: Dashboard) -> dict[str, Any]:
    def step(ref: str, *deps: dict[str, Any], **config: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ref": ref,
            "httpRequest": {"url": f"{dash.target.url}/{ref}", "method": "GET"},
            "config": config,
        }
        if deps:
            body["dependsOn"] = list(deps)
        return body

    tasks = [
        step("extract", executionDelay=HOUR_MS),
        step("transform", {"ref": "extract"}),
        step("load", {"ref": "transform"}),
        step("audit", {"ref": "extract", "requireSuccess": False}),
    ]
    response = dash.http.post("/v1/queues/batch", json={"tasks": tasks}, headers=dash.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_batch_is_a_graph_whose_nodes_open_their_tasks(
    tab: Tab, dash: Dashboard, tmp_path: Path
) -> None:
    made = _batch(dash)
    extract, transform, load, audit = made["tasks"]
    page = tab.page
    sign_in(page, dash)
    page.goto(f"{dash.server.url}/ui#/tasks/{transform['id']}")
    facts = page.locator(".facts")
    expect(facts).to_contain_text("WAITING")
    expect(facts).to_contain_text("once the tasks it waits for have ended")
    expect(facts).to_contain_text(f"transform in {made['batchId']}")
    expect(facts.get_by_role("link", name=extract["id"])).to_be_visible()
    expect(facts.get_by_role("link", name=load["id"])).to_be_visible()
    expect(page.locator(".timeline, .state-empty-inline")).to_contain_text(
        "waits for the tasks it depends on"
    )
    tab.screenshot(tmp_path / "waiting-task.png")

    facts.get_by_role("link", name=made["batchId"]).click()
    nodes = page.locator("svg.graph a.node")
    expect(nodes).to_have_count(4)
    expect(page.locator("svg.graph path.edge")).to_have_count(3)
    expect(page.locator("svg.graph path.edge-any")).to_have_count(1)
    expect(page.locator("svg.graph a.state-running")).to_have_count(1)
    expect(page.locator("svg.graph a.state-waiting")).to_have_count(3)
    # Layered: each task right of those it waits for.
    x = {
        ref: page.locator("svg.graph a.node", has_text=ref).locator("rect").get_attribute("x")
        for ref in ("extract", "transform", "load", "audit")
    }
    columns = {ref: float(value or "nan") for ref, value in x.items()}
    assert columns["extract"] < columns["transform"] < columns["load"]
    assert columns["audit"] == columns["transform"]
    tab.screenshot(tmp_path / "batch-graph.png")
    page.locator("svg.graph a.node", has_text="load").click()
    expect(page.locator(".view-head code")).to_have_text(load["id"])

    page.goto(f"{dash.server.url}/ui#/tasks?state=WAITING")
    expect(page.get_by_label("State")).to_have_value("WAITING")
    # The select shows the filter before the list it asked for has arrived.
    expect(page.locator("tbody tr")).to_have_count(3)
    waiting = page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert set(waiting) == {transform["id"], load["id"], audit["id"]}
    # Revoking the first step ends the rest that required it: the graph says so.
    dash.http.patch(f"/v1/queues/{extract['id']}/revoke", headers=dash.headers)
    page.goto(f"{dash.server.url}/ui#/batches/{made['batchId']}")
    expect(page.locator("svg.graph a.state-error")).to_have_count(2)
    expect(page.locator("svg.graph a.state-revoked")).to_have_count(1)
    tab.screenshot(tmp_path / "batch-graph-failed.png")


def test_an_unknown_batch_says_so(tab: Tab, dash: Dashboard) -> None:
    page = tab.page
    sign_in(page, dash)
    page.goto(f"{dash.server.url}/ui#/batches/01JD0000000000000000000000")
    expect(page.locator(".box-error, .state-box")).to_be_visible()
