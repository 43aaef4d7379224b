"""Schema migrations, applied in order and tracked by ``PRAGMA user_version``.

Append a new script to change the schema; never edit a released one.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: owners and their tasks. A task's request, metadata and response are encrypted
    # blobs; the plain columns are what scheduling, lists and limits need. `version` grows
    # with every change a client makes, so a process holding a lease can tell its copy is
    # stale; `lease_owner`/`lease_until` say which process may execute the task.
    """
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key_digest BLOB NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE queues (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('RUNNING','PAUSED','SUCCESS','ERROR','REVOKED')),
        created_at INTEGER NOT NULL,
        status_code INTEGER NOT NULL DEFAULT 0,
        estimate_execution_at INTEGER NOT NULL,
        estimate_end_at INTEGER NOT NULL DEFAULT 0,
        paused_at INTEGER,
        retry_count INTEGER NOT NULL DEFAULT 0,
        retry_limit INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until INTEGER,
        request BLOB NOT NULL,
        metadata BLOB,
        response BLOB
    ) STRICT;

    CREATE INDEX queues_due ON queues (estimate_execution_at) WHERE state = 'RUNNING';
    CREATE INDEX queues_owner_state ON queues (owner_id, state);
    CREATE INDEX queues_owner_created ON queues (owner_id, created_at);
    CREATE INDEX queues_lease ON queues (lease_owner) WHERE lease_owner IS NOT NULL
    """,
)
