"""Both engines' schemas, read from migrated databases, carry the same tables, columns and
named indexes (SPEC §16.2). Types are compared in a small common vocabulary; a difference made
on purpose is listed in `ONLY_ONE_ENGINE` with its reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

import asyncpg

from tasks_server.settings import Settings
from tasks_server.store import build_store


class Column(NamedTuple):
    type: str  # integer, real, text, blob, boolean, timestamp
    not_null: bool
    primary_key: bool


Schema = dict[str, dict[str, Column]]

# Tables only one engine has, on purpose: the engine and why.
ONLY_ONE_ENGINE = {
    # PostgreSQL records the migrations applied (nodes migrate under an advisory lock);
    # SQLite keeps its version in `PRAGMA user_version`.
    "schema_migrations": "postgres",
}
SQLITE_TYPES = {"INTEGER": "integer", "REAL": "real", "TEXT": "text", "BLOB": "blob"}
POSTGRES_TYPES = {
    "bigint": "integer",
    "integer": "integer",
    "smallint": "integer",
    "double precision": "real",
    "real": "real",
    "text": "text",
    "bytea": "blob",
    "boolean": "boolean",
    "timestamp with time zone": "timestamp",
}

SQLITE_TABLES = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
# Indexes made by name; those SQLite makes for a key or a UNIQUE column are named for it.
SQLITE_INDEXES = """
SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_%'
"""
POSTGRES_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO',
       EXISTS (SELECT 1 FROM information_schema.table_constraints t
                 JOIN information_schema.key_column_usage k
                   ON k.constraint_schema = t.constraint_schema
                  AND k.constraint_name = t.constraint_name
                WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema
                  AND t.table_name = c.table_name AND k.column_name = c.column_name)
  FROM information_schema.columns c
 WHERE c.table_schema = 'public'
"""
# Indexes made by name; those backing a constraint (a key, UNIQUE) are named for it.
POSTGRES_INDEXES = """
SELECT i.tablename, i.indexname FROM pg_indexes i
 WHERE i.schemaname = 'public'
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname)
"""


async def migrated(settings: Settings) -> None:
    store = build_store(settings)
    await store.open()
    await store.close()


def sqlite_schema(path: Path) -> tuple[Schema, set[tuple[str, str]]]:
    conn = sqlite3.connect(path)
    try:
        tables: Schema = {}
        for (table,) in conn.execute(SQLITE_TABLES).fetchall():
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            tables[table] = {
                name: Column(SQLITE_TYPES.get(declared, declared), bool(not_null), pk > 0)
                for _, name, declared, not_null, _, pk in info
            }
        indexes = {(table, name) for table, name in conn.execute(SQLITE_INDEXES).fetchall()}
        return tables, indexes
    finally:
        conn.close()


async def postgres_schema(url: str) -> tuple[Schema, set[tuple[str, str]]]:
    conn = await asyncpg.connect(url)
    try:
        tables: Schema = {}
        for table, name, data_type, not_null, primary_key in await conn.fetch(POSTGRES_COLUMNS):
            column = Column(POSTGRES_TYPES.get(data_type, data_type), not_null, primary_key)
            tables.setdefault(table, {})[name] = column
        indexes = {(row[0], row[1]) for row in await conn.fetch(POSTGRES_INDEXES)}
        return tables, indexes
    finally:
        await conn.close()


def without(schema: Schema, engine: str) -> Schema:
    """`schema` less the tables only `engine` has on purpose."""
    return {
        name: columns for name, columns in schema.items() if ONLY_ONE_ENGINE.get(name) != engine
    }


async def test_both_engines_have_the_same_tables_columns_and_indexes(
    tmp_path: Path, postgres_url: str
) -> None:
    path = tmp_path / "tasks.db"
    await migrated(Settings(path_sqlite=path, log=False))
    await migrated(Settings(database_url=postgres_url, cipher_key="k", log=False))
    sqlite_tables, sqlite_indexes = sqlite_schema(path)
    postgres_tables, postgres_indexes = await postgres_schema(postgres_url)
    vocabulary = set(SQLITE_TYPES.values()) | set(POSTGRES_TYPES.values())
    for engine, tables in (("sqlite", sqlite_tables), ("postgres", postgres_tables)):
        unknown = {c.type for columns in tables.values() for c in columns.values()} - vocabulary
        assert not unknown, f"{engine}: types to map into the common vocabulary: {unknown}"
        for table, only_in in ONLY_ONE_ENGINE.items():
            assert (table in tables) == (only_in == engine), f"{table} on {engine}"
    assert without(sqlite_tables, "sqlite") == without(postgres_tables, "postgres")
    listed = set(ONLY_ONE_ENGINE)
    assert {i for i in sqlite_indexes if i[0] not in listed} == {
        i for i in postgres_indexes if i[0] not in listed
    }
