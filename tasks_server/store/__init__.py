"""The stores: SQLite at PATH_SQLITE, or PostgreSQL when DATABASE_URL is set.

This is the one place outside the drivers that names an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks_server.settings import Settings
    from tasks_server.store.base import TaskStore


def build_store(settings: Settings) -> TaskStore:
    """The store the settings name (not yet opened)."""
    if settings.database_url:
        from tasks_server.store.postgres import PostgresStore

        timeout_s = settings.database_connect_timeout_ms / 1000
        return PostgresStore(settings.database_url, connect_timeout_s=timeout_s)
    from tasks_server.store.sqlite import SqliteStore

    return SqliteStore(settings.path_sqlite)


async def migrate(settings: Settings) -> int:
    """Bring the shared database the settings name (DATABASE_URL) to this server's schema;
    its version now. StoreOpenError says why it cannot be reached or migrated. (SQLite
    migrates as it opens.)"""
    from tasks_server.store.postgres import migrate_url

    assert settings.database_url is not None
    timeout_s = settings.database_connect_timeout_ms / 1000
    return await migrate_url(settings.database_url, connect_timeout_s=timeout_s)
