"""The engines' SQL files: the same statements by name, every name the store uses defined,
fill-ins only from checked names, and units that never leave their transaction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tasks_server.store as store_package
from tasks_server.store import queries
from tasks_server.store.driver import run_to_end

# What one driver runs by itself, and the other engine has no use for.
ENGINE_ONLY = {"sqlite": {"probe_write"}, "postgres": {"now", "try_leader", "notify", "rollback"}}
NAMED = re.compile(r'"([a-z_]+)"')
USED = re.compile(r"""(?:tx|self)\.\w+\(\s*"(\w+)"|\.text\("(\w+)"\)""")


def test_both_engines_hold_the_same_statements() -> None:
    sqlite, postgres = queries.load("sqlite"), queries.load("postgres")
    assert set(sqlite) - ENGINE_ONLY["sqlite"] == set(postgres) - ENGINE_ONLY["postgres"]
    for texts in (sqlite, postgres):
        assert not [name for name, text in texts.items() if "@" in text or not text]


def test_every_statement_the_store_runs_is_in_both_files_and_every_one_is_run() -> None:
    folder = Path(store_package.__file__).parent
    found = [USED.findall(path.read_text()) for path in folder.glob("*.py")]
    used = {a or b for names in found for a, b in names}
    named = {n for path in folder.glob("*.py") for n in NAMED.findall(path.read_text())}
    for engine, other in (("sqlite", "postgres"), ("postgres", "sqlite")):
        texts = set(queries.load(engine))
        assert used - ENGINE_ONLY[other] <= texts, f"run, but not in {engine}.sql"
        assert texts <= named, f"in {engine}.sql, but never named by the store"


def test_sqlite_gets_numbered_parameters_in_place_of_postgresql_style() -> None:
    text = queries.Queries("sqlite", qmark=True).text("rotate_key")
    assert "?1" in text and "?4" in text and "$" not in text


def test_fill_ins_come_only_from_the_columns_and_orders_a_change_or_list_may_name() -> None:
    assert queries.assignments(("state", "paused_at"), queries.QUEUE_CHANGEABLE) == (
        ("set", "state = $1, paused_at = $2"),
        ("id", "$3"),
    )
    with pytest.raises(ValueError, match="not changeable"):
        queries.assignments(("state", "owner_id"), queries.QUEUE_CHANGEABLE)
    with pytest.raises(ValueError, match="not changeable"):
        queries.assignments(("lease_owner",), queries.SCHEDULE_CHANGEABLE)
    assert dict(queries.listing(("state",), "createdAt", True))["order"] == (
        "created_at DESC, id DESC"
    )
    with pytest.raises(ValueError):
        queries.listing(("request",), "createdAt", False)
    with pytest.raises(ValueError):
        queries.listing((), "id; DROP TABLE queues", False)


def test_a_unit_that_awaits_anything_but_its_transaction_is_refused() -> None:
    async def suspends() -> int:
        import asyncio

        await asyncio.sleep(0)
        return 1

    async def direct() -> int:
        return 2

    assert run_to_end(direct()) == 2
    with pytest.raises(RuntimeError, match="awaited something"):
        run_to_end(suspends())
