"""The stores: SQLite at PATH_SQLITE, or PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks_server.settings import Settings
    from tasks_server.store.base import TaskStore


def build_store(settings: Settings) -> TaskStore:
    """The store the settings name (not yet opened)."""
    if settings.database_url:
        from tasks_server.store.postgres import PostgresStore

        return PostgresStore(
            settings.database_url, connect_timeout_s=settings.database_connect_timeout_ms / 1000
        )
    from tasks_server.store.sqlite import SqliteStore

    return SqliteStore(settings.path_sqlite)
