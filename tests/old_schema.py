"""Databases as an older release left them: migrated to a given version of either engine's
schema, holding rows written in that version's tables, for tests of what later migrations and
start-up make of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import asyncpg

from tasks_server.settings import Settings
from tasks_server.store import postgres_schema, schema

Write = tuple[str, Sequence[Any]]  # a statement with `$n` parameters, and its row


async def write_old_database(
    settings: Settings, *, sqlite: int, postgres: int, writes: Sequence[Write]
) -> None:
    """Make the database of `settings` at schema version `sqlite` (or `postgres`, whose
    migrations are numbered apart) and run `writes` on it, nothing of later versions."""
    if settings.database_url is None:
        settings.path_sqlite.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(settings.path_sqlite, isolation_level=None)
        try:
            for script in schema.MIGRATIONS[:sqlite]:
                conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {sqlite}")
            for statement, row in writes:
                conn.execute(statement.replace("$", "?"), row)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(settings.database_url)
    try:
        async with pg.transaction():
            # A fresh database of the suite is migrated: start it again from nothing.
            await pg.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            await pg.execute(postgres_schema.CREATE_VERSIONS)
            for version, script in enumerate(postgres_schema.MIGRATIONS[:postgres], 1):
                await pg.execute(script)
                await pg.execute(postgres_schema.RECORD_VERSION, version)
            for statement, row in writes:
                await pg.execute(statement, *row)
    finally:
        await pg.close()
