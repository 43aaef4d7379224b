"""The /ui dashboard's routes: the packaged page and assets, with a strict CSP."""

from __future__ import annotations

import re

import httpx

from tasks_server.api.security import PAGE_CSP
from tasks_server.api.ui import UI_DIR


async def test_page_is_served_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert "<title>Tasks Server</title>" in response.text


async def test_page_loads_only_packaged_files(client: httpx.AsyncClient) -> None:
    """No inline script or style, nothing from another host: each reference is an asset here."""
    page = (await client.get("/ui")).text
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "style=" not in page and "<style" not in page
    sources = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert sources == ["ui/favicon.svg", "ui/style.css", "ui/app.js"]
    modules = [f"ui/{name}.js" for name in ("api", "dom", "frame", "tasks", "schedules")]
    for source in [*sources, *modules]:
        response = await client.get(f"/{source}")
        assert response.status_code == 200, source
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert response.headers["cache-control"] == "no-cache"
    assert (await client.get("/ui/app.js")).headers["content-type"].startswith("text/javascript")
    assert (await client.get("/ui/style.css")).headers["content-type"].startswith("text/css")


def test_scripts_keep_the_key_out_of_urls_and_storage() -> None:
    """The key goes only into the Authorization header; sessionStorage is the only store."""
    scripts = "".join(path.read_text() for path in UI_DIR.glob("*.js"))
    assert "localStorage" not in scripts and "document.cookie" not in scripts
    assert "innerHTML" not in scripts and "eval(" not in scripts
    api = (UI_DIR / "api.js").read_text()
    assert api.count("credentials.key") == 1
    assert "Authorization: `Bearer ${this.credentials.key}`" in api
    # No URL but the SVG namespace's name (an identifier, never fetched).
    assert re.search(r"https?://", scripts.replace("http://www.w3.org/2000/svg", "")) is None


async def test_unknown_or_hidden_files_are_404(client: httpx.AsyncClient) -> None:
    for path in (
        "/ui/missing.js",
        "/ui/index.html",  # the page has its own route
        "/ui/..%2Fapp.py",
        "/ui/swagger",
        "/ui/../settings.py",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
    api = await client.get("/v1/queues")
    assert "content-security-policy" not in api.headers
