import httpx

from tasks_server.settings import Settings
from tests.conftest import open_client


async def test_status_is_plain_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/status")
    assert response.status_code == 200 and response.text == "OK"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_health_ok_then_503_when_database_gone(settings: Settings) -> None:
    opened = open_client(settings)
    async with opened as client:
        response = await client.get("/health")
        assert response.status_code == 200 and response.json()["status"] == "ok"

        async def broken(*args: object) -> None:
            raise OSError("disk I/O error")

        opened.services.store.ping = broken  # type: ignore[method-assign]
        response = await client.get("/health")
        assert response.status_code == 503 and response.json()["status"] == "error"


async def test_unknown_route_is_empty_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404 and response.content == b""


async def test_wrong_method_has_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.put("/status")
    assert response.status_code == 405
    assert set(response.json()) == {"action", "message"}
