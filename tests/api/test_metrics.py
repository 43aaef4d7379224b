"""/metrics: process and build series, no `_created` samples, requests by route template."""

from __future__ import annotations

import re

import httpx

from tasks_server import __version__
from tasks_server.settings import Settings
from tests.conftest import open_client, register_owner

UNKNOWN_ID = "01JD0000000000000000000000"


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample, its labels in any order."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1] or "")) == labels:
            return float(match[2])
    return None


async def test_process_and_build_info_series(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert (_sample(text, "process_cpu_seconds_total") or 0) > 0
    assert (_sample(text, "process_resident_memory_bytes") or 0) > 0
    assert _sample(text, "tasks_build_info", version=__version__) == 1


async def test_no_created_series(client: httpx.AsyncClient) -> None:
    await register_owner(client)
    text = (await client.get("/metrics")).text
    assert "tasks_registrations_total" in text and "tasks_attempt_duration_seconds" in text
    assert [line for line in text.splitlines() if "_created" in line] == []


async def test_requests_are_counted_by_route_template_method_and_status(
    settings: Settings,
) -> None:
    async with open_client(settings) as client:
        headers = await register_owner(client)
        for _ in range(3):
            assert (
                await client.get(f"/v1/queues/{UNKNOWN_ID}", headers=headers)
            ).status_code == 404
        assert (await client.delete(f"/v1/queues/{UNKNOWN_ID}", headers=headers)).status_code == 404
        assert (await client.get("/v1/queues", headers={})).status_code == 403
        assert (await client.get("/no/such/route")).status_code == 404
        text = (await client.get("/metrics")).text
    count = "tasks_http_requests_total"
    assert _sample(text, count, route="/v1/queues/{id}", method="GET", status="404") == 3
    assert _sample(text, count, route="/v1/queues/{id}", method="DELETE", status="404") == 1
    assert _sample(text, count, route="/v1/owners/register", method="POST", status="201") == 1
    assert _sample(text, count, route="/v1/queues", method="GET", status="403") == 1
    # Paths that match no route share one label: a scanner cannot grow the series.
    assert _sample(text, count, route="unmatched", method="GET", status="404") == 1
    assert UNKNOWN_ID not in text and "/no/such/route" not in text
