import asyncio

import pytest

from tasks_server.connectivity import ConnectivityGate


async def test_empty_hostname_is_always_open() -> None:
    await asyncio.wait_for(ConnectivityGate("", 100).wait_open(), 1)


async def test_localhost_resolves_and_stays_open() -> None:
    gate = ConnectivityGate("localhost", 60_000)
    await asyncio.wait_for(gate.wait_open(), 5)
    await asyncio.wait_for(gate.wait_open(), 0.1)  # cached: no second look-up


async def test_waits_until_the_name_resolves(monkeypatch: pytest.MonkeyPatch, caplog) -> None:  # type: ignore[no-untyped-def]
    answers = iter([False, False, True])
    calls = []

    async def resolves(self: ConnectivityGate) -> bool:
        calls.append(1)
        return next(answers)

    monkeypatch.setattr(ConnectivityGate, "_resolves", resolves)
    gate = ConnectivityGate("gate.test", 100)
    waiters = [asyncio.create_task(gate.wait_open()) for _ in range(5)]
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert len(calls) == 3  # one look-up at a time, shared by every waiter
    assert "does not resolve" in caplog.text
