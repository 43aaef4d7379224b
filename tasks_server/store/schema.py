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
    # 2: wave 2. `meta` holds the cipher check value. The owner's count of RUNNING/PAUSED
    # tasks is kept by triggers in the same transaction as every change, so the limit check
    # is O(1). Owners get a rotatable key (the previous digest works until
    # `previous_key_until`) and a sealed signing secret. An attempt row is opened when an
    # attempt starts and closed with the outcome: an open row (finished_at = 0) is what "in
    # flight" means; `queues.attempts` numbers them across retries and replays.
    """
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;

    ALTER TABLE owners ADD COLUMN active_tasks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE owners ADD COLUMN previous_key_digest BLOB;
    ALTER TABLE owners ADD COLUMN previous_key_until INTEGER;
    ALTER TABLE owners ADD COLUMN signing_secret BLOB;
    ALTER TABLE owners ADD COLUMN previous_signing_secret BLOB;
    ALTER TABLE owners ADD COLUMN previous_signing_until INTEGER;
    UPDATE owners SET active_tasks = (
        SELECT count(*) FROM queues
         WHERE queues.owner_id = owners.id AND state IN ('RUNNING', 'PAUSED'));

    CREATE TRIGGER queues_active_insert AFTER INSERT ON queues
      WHEN NEW.state IN ('RUNNING', 'PAUSED')
    BEGIN
      UPDATE owners SET active_tasks = active_tasks + 1 WHERE id = NEW.owner_id;
    END;
    CREATE TRIGGER queues_active_delete AFTER DELETE ON queues
      WHEN OLD.state IN ('RUNNING', 'PAUSED')
    BEGIN
      UPDATE owners SET active_tasks = active_tasks - 1 WHERE id = OLD.owner_id;
    END;
    CREATE TRIGGER queues_active_update AFTER UPDATE OF state ON queues
      WHEN (OLD.state IN ('RUNNING', 'PAUSED')) != (NEW.state IN ('RUNNING', 'PAUSED'))
    BEGIN
      UPDATE owners SET active_tasks = active_tasks
        + (CASE WHEN NEW.state IN ('RUNNING', 'PAUSED') THEN 1 ELSE -1 END)
       WHERE id = NEW.owner_id;
    END;

    ALTER TABLE queues ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN schedule_id TEXT;
    CREATE INDEX queues_finished ON queues (estimate_end_at)
      WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED');

    CREATE TABLE attempts (
        queue_id TEXT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        holder TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL DEFAULT 0,
        status_code INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL DEFAULT 'IN_FLIGHT',
        error BLOB,
        response BLOB,
        PRIMARY KEY (queue_id, attempt)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX attempts_open ON attempts (holder) WHERE finished_at = 0;

    CREATE TABLE idempotency (
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        body_digest BLOB NOT NULL,
        queue_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (owner_id, key)
    ) STRICT;
    CREATE INDEX idempotency_expiry ON idempotency (expires_at)
    """,
    # 3: recurring schedules. Each fire registers one task carrying `schedule_id` and the
    # fire time it stands for (`scheduled_for`); the unique index makes that exactly one per
    # (schedule, fire time), whichever process fires and however often.
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('ACTIVE','PAUSED')),
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        next_run_at INTEGER NOT NULL DEFAULT 0,
        last_run_at INTEGER NOT NULL DEFAULT 0,
        last_queue_id TEXT,
        version INTEGER NOT NULL DEFAULT 0,
        request BLOB NOT NULL,
        metadata BLOB
    ) STRICT;
    CREATE INDEX schedules_owner ON schedules (owner_id, created_at);
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE state = 'ACTIVE';

    ALTER TABLE queues ADD COLUMN scheduled_for INTEGER;
    CREATE UNIQUE INDEX queues_schedule_fire ON queues (schedule_id, scheduled_for)
      WHERE schedule_id IS NOT NULL;
    CREATE INDEX queues_owner_schedule ON queues (owner_id, schedule_id, created_at)
      WHERE schedule_id IS NOT NULL
    """,
    # 4: callbacks and flow control. A callback is a task of its own (`callback_of` names
    # the task whose outcome it delivers; that task's `callback_id` names it), inserted in
    # the outcome's transaction. Tasks sharing a flow key are claimed through `flows`: the
    # row is the key's lock and keeps the next start its rate allows.
    """
    ALTER TABLE queues ADD COLUMN callback_of TEXT;
    ALTER TABLE queues ADD COLUMN callback_id TEXT;
    ALTER TABLE queues ADD COLUMN flow_key TEXT;
    ALTER TABLE queues ADD COLUMN flow_parallelism INTEGER;
    ALTER TABLE queues ADD COLUMN flow_rate REAL;
    CREATE INDEX queues_flow ON queues (owner_id, flow_key, estimate_execution_at)
      WHERE state = 'RUNNING' AND flow_key IS NOT NULL;

    CREATE TABLE flows (
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        next_start_at INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (owner_id, key)
    ) STRICT, WITHOUT ROWID
    """,
    # 5: `Idempotency-Key` values and flow keys are kept as keyed digests (SPEC §15.7) in the
    # same columns. Digesting needs the cipher key, which start-up has only after its check
    # (`TaskStore.digest_plain_keys`): this marks the keys written before as plain for it
    # (every database, an empty one too: digesting nothing costs nothing).
    """
    INSERT INTO meta (name, value) VALUES ('plain_keys', x'01')
    """,
    # 6: an attempt's row counts it (`queues.attempts`), so opening attempts is one statement.
    """
    CREATE TRIGGER attempts_counted AFTER INSERT ON attempts
    BEGIN
      UPDATE queues SET attempts = attempts + 1 WHERE id = NEW.queue_id;
    END
    """,
    # 7: owners imported from the original Bun server (SPEC §19.1) keep its argon2 hash of
    # their key until its first use, which replaces it by the SHA-256 digest.
    """
    ALTER TABLE owners ADD COLUMN original_key_hash TEXT
    """,
    # 8: workflows (SPEC §17): a task's batch and its `ref` in it. A task waiting for others
    # is WAITING, which the state's CHECK must allow: SQLite changes a CHECK only by rebuilding
    # the table (`migrate` turns foreign keys off meanwhile, so dropping the old table deletes
    # no attempt). `pending_deps` counts its dependencies still unfinished; at 0 it is due
    # `release_delay` after its release, or at its `executeAt` (`estimate_execution_at`).
    # `has_dependents` keeps its response for their placeholders; `callback_due` marks a task
    # a failed dependency ended, whose failureCallback is queued next (it needs the request
    # opened, which a transaction never does). `dependencies` holds the edges, with the name
    # the dependent's placeholders use; an attempt whose placeholders were filled keeps what
    # it `sent`.
    """
    DROP TRIGGER attempts_counted;
    CREATE TABLE queues_new (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        state TEXT NOT NULL
          CHECK (state IN ('RUNNING','PAUSED','SUCCESS','ERROR','REVOKED','WAITING')),
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
        response BLOB,
        attempts INTEGER NOT NULL DEFAULT 0,
        schedule_id TEXT,
        scheduled_for INTEGER,
        callback_of TEXT,
        callback_id TEXT,
        flow_key TEXT,
        flow_parallelism INTEGER,
        flow_rate REAL,
        batch_id TEXT,
        pending_deps INTEGER NOT NULL DEFAULT 0,
        release_delay INTEGER NOT NULL DEFAULT 0,
        has_dependents INTEGER NOT NULL DEFAULT 0,
        callback_due INTEGER NOT NULL DEFAULT 0,
        ref TEXT
    ) STRICT;
    INSERT INTO queues_new (id, owner_id, state, created_at, status_code, estimate_execution_at,
                            estimate_end_at, paused_at, retry_count, retry_limit, version,
                            lease_owner, lease_until, request, metadata, response, attempts,
                            schedule_id, scheduled_for, callback_of, callback_id, flow_key,
                            flow_parallelism, flow_rate)
    SELECT id, owner_id, state, created_at, status_code, estimate_execution_at, estimate_end_at,
           paused_at, retry_count, retry_limit, version, lease_owner, lease_until, request,
           metadata, response, attempts, schedule_id, scheduled_for, callback_of, callback_id,
           flow_key, flow_parallelism, flow_rate
      FROM queues;
    DROP TABLE queues;
    ALTER TABLE queues_new RENAME TO queues;

    CREATE INDEX queues_due ON queues (estimate_execution_at) WHERE state = 'RUNNING';
    CREATE INDEX queues_owner_state ON queues (owner_id, state);
    CREATE INDEX queues_owner_created ON queues (owner_id, created_at);
    CREATE INDEX queues_lease ON queues (lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE INDEX queues_finished ON queues (estimate_end_at)
      WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED');
    CREATE UNIQUE INDEX queues_schedule_fire ON queues (schedule_id, scheduled_for)
      WHERE schedule_id IS NOT NULL;
    CREATE INDEX queues_owner_schedule ON queues (owner_id, schedule_id, created_at)
      WHERE schedule_id IS NOT NULL;
    CREATE INDEX queues_flow ON queues (owner_id, flow_key, estimate_execution_at)
      WHERE state = 'RUNNING' AND flow_key IS NOT NULL;
    CREATE INDEX queues_batch ON queues (batch_id) WHERE batch_id IS NOT NULL;
    CREATE INDEX queues_callback_due ON queues (id) WHERE callback_due = 1;

    CREATE TRIGGER queues_active_insert AFTER INSERT ON queues
      WHEN NEW.state IN ('RUNNING', 'PAUSED', 'WAITING')
    BEGIN
      UPDATE owners SET active_tasks = active_tasks + 1 WHERE id = NEW.owner_id;
    END;
    CREATE TRIGGER queues_active_delete AFTER DELETE ON queues
      WHEN OLD.state IN ('RUNNING', 'PAUSED', 'WAITING')
    BEGIN
      UPDATE owners SET active_tasks = active_tasks - 1 WHERE id = OLD.owner_id;
    END;
    CREATE TRIGGER queues_active_update AFTER UPDATE OF state ON queues
      WHEN (OLD.state IN ('RUNNING', 'PAUSED', 'WAITING'))
        != (NEW.state IN ('RUNNING', 'PAUSED', 'WAITING'))
    BEGIN
      UPDATE owners SET active_tasks = active_tasks
        + (CASE WHEN NEW.state IN ('RUNNING', 'PAUSED', 'WAITING') THEN 1 ELSE -1 END)
       WHERE id = NEW.owner_id;
    END;
    CREATE TRIGGER attempts_counted AFTER INSERT ON attempts
    BEGIN
      UPDATE queues SET attempts = attempts + 1 WHERE id = NEW.queue_id;
    END;

    CREATE TABLE dependencies (
        queue_id TEXT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        depends_on TEXT NOT NULL,
        name TEXT NOT NULL,
        require_success INTEGER NOT NULL,
        PRIMARY KEY (queue_id, depends_on)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX dependencies_parent ON dependencies (depends_on);
    ALTER TABLE attempts ADD COLUMN sent BLOB
    """,
    # 9: lists that tell tasks apart and an overview (SPEC §19.4). Labels (plain JSON, not
    # encrypted), the method, redacted target and destination of the request, and the last
    # attempt's outcome are plain columns, so a page of summaries opens no sealed request;
    # `queue_labels` holds one row per label, kept by triggers, for the label filters. Closing
    # an attempt keeps per-minute counts (attempts by outcome, lateness in buckets, failures by
    # destination), so the stats route reads a few hundred rows, not a million attempts
    # (`slot` is PostgreSQL's: one writer here, always 0).
    """
    ALTER TABLE queues ADD COLUMN labels TEXT;
    ALTER TABLE queues ADD COLUMN method TEXT;
    ALTER TABLE queues ADD COLUMN target TEXT;
    ALTER TABLE queues ADD COLUMN destination TEXT;
    ALTER TABLE queues ADD COLUMN outcome TEXT;
    ALTER TABLE schedules ADD COLUMN labels TEXT;
    CREATE INDEX queues_owner_status ON queues (owner_id, status_code, created_at);
    CREATE INDEX queues_owner_outcome ON queues (owner_id, outcome, created_at)
      WHERE outcome IS NOT NULL;

    CREATE TABLE queue_labels (
        queue_id TEXT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        owner_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (queue_id, key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX queue_labels_find ON queue_labels (owner_id, key, value);
    CREATE TRIGGER queues_labels_added AFTER INSERT ON queues WHEN NEW.labels IS NOT NULL
    BEGIN
      INSERT INTO queue_labels (queue_id, owner_id, key, value)
      SELECT NEW.id, NEW.owner_id, key, value FROM json_each(NEW.labels);
    END;
    CREATE TRIGGER queues_labels_changed AFTER UPDATE OF labels ON queues
    BEGIN
      DELETE FROM queue_labels WHERE queue_id = NEW.id;
      INSERT INTO queue_labels (queue_id, owner_id, key, value)
      SELECT NEW.id, NEW.owner_id, key, value FROM json_each(coalesce(NEW.labels, '{}'));
    END;

    CREATE TABLE stats_attempts (
        owner_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        slot INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (owner_id, minute, outcome, slot)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE stats_lateness (
        owner_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        slot INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (owner_id, minute, bucket, slot)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE stats_failures (
        owner_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        destination TEXT NOT NULL,
        slot INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL,
        PRIMARY KEY (owner_id, minute, destination, slot)
    ) STRICT, WITHOUT ROWID;
    -- A lateness bucket is how many of the bounds of `stats.LATENESS_BOUNDS_MS` it exceeds.
    -- Each statement reads its row by key and nothing else: this runs for every attempt.
    CREATE TRIGGER attempts_closed AFTER UPDATE OF outcome ON attempts
      WHEN OLD.outcome = 'IN_FLIGHT' AND NEW.outcome != 'IN_FLIGHT'
    BEGIN
      UPDATE queues SET outcome = NEW.outcome
       WHERE id = NEW.queue_id AND outcome IS NOT NEW.outcome;
      INSERT INTO stats_attempts (owner_id, minute, outcome, attempts)
      SELECT owner_id, NEW.finished_at / 60000 * 60000, NEW.outcome, 1
        FROM queues WHERE id = NEW.queue_id
      ON CONFLICT DO UPDATE SET attempts = attempts + 1;
      INSERT INTO stats_lateness (owner_id, minute, bucket, attempts)
      SELECT owner_id, NEW.finished_at / 60000 * 60000,
             (NEW.started_at - NEW.due_at > 0) + (NEW.started_at - NEW.due_at > 1)
             + (NEW.started_at - NEW.due_at > 2) + (NEW.started_at - NEW.due_at > 5)
             + (NEW.started_at - NEW.due_at > 10) + (NEW.started_at - NEW.due_at > 20)
             + (NEW.started_at - NEW.due_at > 50) + (NEW.started_at - NEW.due_at > 100)
             + (NEW.started_at - NEW.due_at > 200) + (NEW.started_at - NEW.due_at > 500)
             + (NEW.started_at - NEW.due_at > 1000) + (NEW.started_at - NEW.due_at > 2000)
             + (NEW.started_at - NEW.due_at > 5000) + (NEW.started_at - NEW.due_at > 10000)
             + (NEW.started_at - NEW.due_at > 30000) + (NEW.started_at - NEW.due_at > 60000)
             + (NEW.started_at - NEW.due_at > 300000)
             + (NEW.started_at - NEW.due_at > 3600000),
             1
        FROM queues WHERE id = NEW.queue_id
      ON CONFLICT DO UPDATE SET attempts = attempts + 1;
    END;
    CREATE TRIGGER attempts_failed AFTER UPDATE OF outcome ON attempts
      WHEN OLD.outcome = 'IN_FLIGHT'
       AND NEW.outcome IN ('FAILURE', 'TIMEOUT', 'TOO_LARGE', 'TRANSPORT')
    BEGIN
      INSERT INTO stats_failures (owner_id, minute, destination, failures)
      SELECT owner_id, NEW.finished_at / 60000 * 60000, destination, 1
        FROM queues WHERE id = NEW.queue_id AND destination IS NOT NULL
      ON CONFLICT DO UPDATE SET failures = failures + 1;
    END
    """,
    # 10: destinations' circuits (SPEC §18.1), one row per owner + scheme + host + port once an
    # attempt to it failed. `id` is a keyed digest of owner and address, `address` sealed;
    # `open_until` 0 is closed, past is half-open (one probe, `probe_until` its lease). Tasks
    # waiting for a circuit are leased to it (`lease_owner` 'circuit:' || id) until it opens.
    """
    CREATE TABLE destinations (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        address BLOB NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        open_until INTEGER NOT NULL DEFAULT 0,
        open_ms INTEGER NOT NULL DEFAULT 0,
        probe_until INTEGER NOT NULL DEFAULT 0,
        last_error BLOB,
        updated_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX destinations_owner ON destinations (owner_id, updated_at);
    CREATE INDEX destinations_open ON destinations (open_until) WHERE open_until > 0
    """,
    # 11: the overview's aggregates in one table, counted by the outcome write itself
    # (`stats.count`: one statement per batch of outcomes) instead of three triggers per
    # attempt. A row counts the attempts of an owner's minute of one `kind`: `outcome` (key:
    # the outcome), `lateness` (key: its bucket) or `failure` (key: the destination). The
    # task's last outcome is written by the outcome write too.
    """
    CREATE TABLE stats_counts (
        owner_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        minute INTEGER NOT NULL,
        key TEXT NOT NULL,
        slot INTEGER NOT NULL DEFAULT 0,
        n INTEGER NOT NULL,
        PRIMARY KEY (owner_id, kind, minute, key, slot)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'outcome', minute, outcome, sum(attempts) FROM stats_attempts
     GROUP BY owner_id, minute, outcome;
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'lateness', minute, CAST(bucket AS TEXT), sum(attempts) FROM stats_lateness
     GROUP BY owner_id, minute, bucket;
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'failure', minute, destination, sum(failures) FROM stats_failures
     GROUP BY owner_id, minute, destination;
    DROP TRIGGER attempts_closed;
    DROP TRIGGER attempts_failed;
    DROP TABLE stats_attempts;
    DROP TABLE stats_lateness;
    DROP TABLE stats_failures
    """,
    # 12: an attempt is numbered after the highest its task has (its rows, or
    # `queues.attempts`, which the outcome write keeps at the number it records): opening an
    # attempt writes no task row (PostgreSQL migration 13).
    """
    DROP TRIGGER attempts_counted
    """,
)
