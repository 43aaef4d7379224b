"""Debian's headless Chromium driven by Playwright, confined to the server under test.

Playwright's own browser downloads are never used: the tests run ``CHROMIUM`` (default
``/usr/bin/chromium``; ``./scripts/test`` installs Debian's ``chromium`` package when it is
missing). Without it the tests fail under CI and skip, with the reason, elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    sync_playwright,
)

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """One browser (tests share it per module: starting Chromium is the slow part)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (./scripts/test installs it)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page in a fresh context whose requests may reach only `origin`."""

    page: Page
    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=path, full_page=True)
        return path


@contextmanager
def open_tab(browser: Browser, origin: str, **context_options: object) -> Iterator[Tab]:
    """A tab that aborts and records any request to another host, and records console errors.

    On leaving, it asserts that nothing tried to leave the server and that the page logged
    no error other than the failed API calls a test provokes on purpose.
    """
    context: BrowserContext = browser.new_context(**context_options)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page, origin)

    def confine(route: Route) -> None:
        url = route.request.url
        if url.startswith(f"{origin}/") or url.startswith("data:"):
            route.continue_()
        else:
            tab.foreign.append(url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        # A refused API call logs "Failed to load resource: … status of 4xx": that is the
        # refusal under test, shown to the user; anything else (a CSP violation) is a bug.
        if message.type == "error" and "Failed to load resource" not in message.text:
            tab.errors.append(message.text)

    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    context.route("**/*", confine)
    try:
        yield tab
    finally:
        context.close()
    assert tab.foreign == [], f"requests left the server: {tab.foreign}"
    assert [url for url in tab.requests if not url.startswith(("data:", f"{origin}/"))] == []
    assert tab.errors == [], f"the page logged errors: {tab.errors}"
