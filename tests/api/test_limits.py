"""Body size limit and the per-client throttle."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tasks_server.api.throttle import Throttle
from tests.conftest import MakeSettings, open_client


async def test_oversized_declared_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/owners/register", content=b"x" * 40_000)
    assert response.status_code == 413
    assert response.json()["action"] == "Do not retry without fixing the problem"


async def test_streamed_body_is_cut_off_while_reading(client: httpx.AsyncClient) -> None:
    """A chunked upload with no Content-Length is refused once over the limit, not buffered."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100_000):  # 100 MB if it were all read
            sent += 1
            yield b"x" * 1000

    response = await client.post("/v1/owners/register", content=endless())
    assert response.status_code == 413
    assert sent < 100  # the server stopped pulling chunks right after the 32 KiB limit


async def test_throttle_windows_and_headers(make_settings: MakeSettings) -> None:
    settings = make_settings(max_throttle_request=3, max_throttle_time_window=60_000)
    async with open_client(settings) as client:
        responses = [await client.get("/v1/owners/whoever") for _ in range(4)]
        assert [r.status_code for r in responses] == [403, 403, 403, 429]
        assert responses[0].headers["ratelimit-policy"] == "3;w=60"
        assert responses[0].headers["ratelimit-limit"] == "3"
        assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
        limited = responses[3]
        assert 1 <= int(limited.headers["ratelimit-reset"]) <= 60
        assert limited.json()["action"] == "Please wait until the server restore your connection"
        # service routes are not throttled
        assert (await client.get("/status")).status_code == 200
    async with open_client(settings, client_addr="127.0.0.2") as other:
        assert (await other.get("/v1/owners/whoever")).status_code == 403


async def test_throttle_resets_with_the_window() -> None:
    now = [1000.0]
    seen: list[int] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    throttled = []
    throttle = Throttle(
        app,
        limit=1,
        window_ms=10_000,
        clock=lambda: now[0],
        on_throttled=lambda: throttled.append(1),
    )

    async def call() -> None:
        async def send(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                seen.append(message["status"])

        scope = {"type": "http", "path": "/v1/x", "client": ("10.0.0.1", 1), "headers": []}
        await throttle(scope, None, send)  # type: ignore[arg-type]

    await call()
    await call()
    now[0] += 10
    await call()
    assert seen == [204, 429, 204]
    assert throttled == [1]


@pytest.mark.parametrize(("peer", "second_status"), [("127.0.0.1", 403), ("127.0.0.9", 429)])
async def test_forwarded_for_trusted_only_from_listed_proxies(
    make_settings: MakeSettings, peer: str, second_status: int
) -> None:
    """Two clients behind one proxy: told apart only when the proxy is trusted."""
    settings = make_settings(
        max_throttle_request=1, max_throttle_time_window=60_000, forwarded_allow_ips=["127.0.0.1"]
    )
    async with open_client(settings, client_addr=peer) as client:
        first = await client.get("/v1/owners/nobody", headers={"X-Forwarded-For": "203.0.113.1"})
        second = await client.get("/v1/owners/nobody", headers={"X-Forwarded-For": "203.0.113.2"})
        assert (first.status_code, second.status_code) == (403, second_status)
