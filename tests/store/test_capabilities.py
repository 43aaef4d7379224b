"""What differs between the engines is said by capabilities, never asked with isinstance."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from tasks_server import lifecycle
from tasks_server.settings import Settings
from tasks_server.store import build_store
from tasks_server.store.base import QueueRow, TaskStore

from .conftest import FUTURE, add


async def test_capabilities_say_how_the_engine_is_run(
    store: TaskStore, settings: Settings, store_kind: str
) -> None:
    if store_kind == "sqlite":
        expected: tuple[bool, int, Path | None] = (False, 60_000, settings.path_sqlite)
    else:
        expected = (True, 20_000, None)
    assert (store.shared, store.lease_ms, store.local_file) == expected


async def test_changes_made_elsewhere_are_heard_where_the_engine_can_tell(
    store: TaskStore, owner: str, settings: Settings, store_kind: str
) -> None:
    """PostgreSQL tells a listening store of another's change; SQLite never calls."""
    heard: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
    missed: list[None] = []
    await store.listen(
        lambda queue_id, version: heard.put_nowait((queue_id, version)),
        lambda: missed.append(None),
    )
    row = await add(store, owner, due=FUTURE)
    other = build_store(settings)
    await other.open()
    try:
        pause = functools.partial(lifecycle.decide, transition=lifecycle.Pause(FUTURE - 1))
        changed = await other.change(owner, row.id, pause)
    finally:
        await other.close()
    assert isinstance(changed, QueueRow)
    if store_kind == "sqlite":  # nothing could call: listen keeps no callback
        assert heard.empty()
    else:
        async with asyncio.timeout(10):
            while (notice := await heard.get()) != (row.id, changed.version):
                assert notice[0] == row.id
    assert not missed
