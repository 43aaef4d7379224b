"""The PostgreSQL schema: its migrations, and the statements that apply them.

The schema has the meaning of SQLite migrations 1 and 2 (``schema.py``): times are epoch
milliseconds (bigint), encrypted blobs are bytea, and the owner's count of RUNNING/PAUSED
tasks is kept by a trigger in the same transaction as every change. Lease and due
comparisons use the database's clock (`tasks_now_ms()`), so nodes with skewed clocks agree.
Append a migration to change the schema; never edit a released one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: what SQLite migrations 1 and 2 hold together.
    """
    CREATE FUNCTION tasks_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
      $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

    CREATE TABLE meta (
        name text PRIMARY KEY,
        value bytea NOT NULL
    );

    CREATE TABLE owners (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        key_digest bytea NOT NULL,
        created_at bigint NOT NULL,
        active_tasks integer NOT NULL DEFAULT 0,
        previous_key_digest bytea,
        previous_key_until bigint,
        signing_secret bytea,
        previous_signing_secret bytea,
        previous_signing_until bigint
    );

    CREATE TABLE queues (
        id text PRIMARY KEY,
        owner_id text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        state text NOT NULL CHECK (state IN ('RUNNING','PAUSED','SUCCESS','ERROR','REVOKED')),
        created_at bigint NOT NULL,
        status_code integer NOT NULL DEFAULT 0,
        estimate_execution_at bigint NOT NULL,
        estimate_end_at bigint NOT NULL DEFAULT 0,
        paused_at bigint,
        retry_count integer NOT NULL DEFAULT 0,
        retry_limit integer NOT NULL DEFAULT 0,
        version integer NOT NULL DEFAULT 0,
        lease_owner text,
        lease_until bigint,
        request bytea NOT NULL,
        metadata bytea,
        response bytea,
        attempts integer NOT NULL DEFAULT 0,
        schedule_id text
    );
    CREATE INDEX queues_due ON queues (estimate_execution_at) WHERE state = 'RUNNING';
    CREATE INDEX queues_owner_state ON queues (owner_id, state);
    CREATE INDEX queues_owner_created ON queues (owner_id, created_at);
    CREATE INDEX queues_lease ON queues (lease_owner) WHERE lease_owner IS NOT NULL;
    CREATE INDEX queues_finished ON queues (estimate_end_at)
      WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED');

    CREATE FUNCTION queues_active_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        IF NEW.state IN ('RUNNING', 'PAUSED') THEN
          UPDATE owners SET active_tasks = active_tasks + 1 WHERE id = NEW.owner_id;
        END IF;
      ELSIF TG_OP = 'DELETE' THEN
        IF OLD.state IN ('RUNNING', 'PAUSED') THEN
          UPDATE owners SET active_tasks = active_tasks - 1 WHERE id = OLD.owner_id;
        END IF;
      ELSIF (OLD.state IN ('RUNNING', 'PAUSED')) <> (NEW.state IN ('RUNNING', 'PAUSED')) THEN
        UPDATE owners SET active_tasks = active_tasks
          + (CASE WHEN NEW.state IN ('RUNNING', 'PAUSED') THEN 1 ELSE -1 END)
         WHERE id = NEW.owner_id;
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_active_tasks AFTER INSERT OR DELETE OR UPDATE OF state ON queues
      FOR EACH ROW EXECUTE FUNCTION queues_active_tasks();

    CREATE TABLE attempts (
        queue_id text NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        attempt integer NOT NULL,
        holder text NOT NULL,
        due_at bigint NOT NULL,
        started_at bigint NOT NULL,
        finished_at bigint NOT NULL DEFAULT 0,
        status_code integer NOT NULL DEFAULT 0,
        outcome text NOT NULL DEFAULT 'IN_FLIGHT',
        error bytea,
        response bytea,
        PRIMARY KEY (queue_id, attempt)
    );
    CREATE INDEX attempts_open ON attempts (holder) WHERE finished_at = 0;

    CREATE TABLE idempotency (
        owner_id text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        key text NOT NULL,
        body_digest bytea NOT NULL,
        queue_id text NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (owner_id, key)
    );
    CREATE INDEX idempotency_expiry ON idempotency (expires_at)
    """,
    # 2: recurring schedules (SQLite migration 3). The unique index makes one task per
    # (schedule, fire time), whichever node fires and however often.
    """
    CREATE TABLE schedules (
        id text PRIMARY KEY,
        owner_id text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        state text NOT NULL CHECK (state IN ('ACTIVE','PAUSED')),
        cron text NOT NULL,
        timezone text NOT NULL,
        created_at bigint NOT NULL,
        next_run_at bigint NOT NULL DEFAULT 0,
        last_run_at bigint NOT NULL DEFAULT 0,
        last_queue_id text,
        version integer NOT NULL DEFAULT 0,
        request bytea NOT NULL,
        metadata bytea
    );
    CREATE INDEX schedules_owner ON schedules (owner_id, created_at);
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE state = 'ACTIVE';

    ALTER TABLE queues ADD COLUMN scheduled_for bigint;
    CREATE UNIQUE INDEX queues_schedule_fire ON queues (schedule_id, scheduled_for)
      WHERE schedule_id IS NOT NULL;
    CREATE INDEX queues_owner_schedule ON queues (owner_id, schedule_id, created_at)
      WHERE schedule_id IS NOT NULL
    """,
    # 3: callbacks and flow control (SQLite migration 4).
    """
    ALTER TABLE queues ADD COLUMN callback_of text;
    ALTER TABLE queues ADD COLUMN callback_id text;
    ALTER TABLE queues ADD COLUMN flow_key text;
    ALTER TABLE queues ADD COLUMN flow_parallelism integer;
    ALTER TABLE queues ADD COLUMN flow_rate double precision;
    CREATE INDEX queues_flow ON queues (owner_id, flow_key, estimate_execution_at)
      WHERE state = 'RUNNING' AND flow_key IS NOT NULL;

    CREATE TABLE flows (
        owner_id text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        key text NOT NULL,
        next_start_at bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (owner_id, key)
    )
    """,
    # 4: keys kept as keyed digests (SQLite migration 5).
    """
    INSERT INTO meta (name, value) VALUES ('plain_keys', decode('01', 'hex'))
    """,
    # 5: the owners' counts of active tasks kept once per statement, not once per row: a
    # statement writing many tasks of one owner (a batch of outcomes, a bulk registration)
    # updated the owner's row once per task, and each update of a row the transaction has
    # already updated walks the chain of its versions, so a batch cost the square of its size.
    """
    DROP TRIGGER queues_active_tasks ON queues;
    DROP FUNCTION queues_active_tasks();

    CREATE FUNCTION queues_active_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks + d.n
        FROM (SELECT owner_id, count(*) AS n FROM added
               WHERE state IN ('RUNNING', 'PAUSED') GROUP BY owner_id) d
       WHERE o.id = d.owner_id;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_active_added AFTER INSERT ON queues
      REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION queues_active_added();

    CREATE FUNCTION queues_active_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks - d.n
        FROM (SELECT owner_id, count(*) AS n FROM removed
               WHERE state IN ('RUNNING', 'PAUSED') GROUP BY owner_id) d
       WHERE o.id = d.owner_id;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_active_removed AFTER DELETE ON queues
      REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
      EXECUTE FUNCTION queues_active_removed();

    -- An update never moves a task to another owner: each owner's change is its active
    -- tasks after less those before (counted apart: a join of the two transition tables,
    -- which have no index, can cost the square of their size).
    CREATE FUNCTION queues_active_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks + d.n
        FROM (SELECT owner_id, sum(n) AS n
                FROM (SELECT owner_id, count(*) AS n FROM after_rows
                       WHERE state IN ('RUNNING', 'PAUSED') GROUP BY owner_id
                      UNION ALL
                      SELECT owner_id, -count(*) FROM before_rows
                       WHERE state IN ('RUNNING', 'PAUSED') GROUP BY owner_id) counted
               GROUP BY owner_id) d
       WHERE o.id = d.owner_id AND d.n <> 0;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_active_changed AFTER UPDATE ON queues
      REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
      EXECUTE FUNCTION queues_active_changed()
    """,
    # 6: an attempt's row counts it (`queues.attempts`), once per statement, so opening
    # attempts is one statement (SQLite migration 6).
    """
    CREATE FUNCTION attempts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE queues q SET attempts = q.attempts + o.n
        FROM (SELECT queue_id, count(*) AS n FROM opened GROUP BY queue_id) o
       WHERE q.id = o.queue_id;
      RETURN NULL;
    END $$;
    CREATE TRIGGER attempts_counted AFTER INSERT ON attempts
      REFERENCING NEW TABLE AS opened FOR EACH STATEMENT EXECUTE FUNCTION attempts_counted()
    """,
    # 7: the argon2 key hash of an owner imported from the original (SQLite migration 7).
    """
    ALTER TABLE owners ADD COLUMN original_key_hash text
    """,
    # 8: workflows (SQLite migration 8): the WAITING state, counted as active; a task's batch
    # and dependencies.
    """
    ALTER TABLE queues DROP CONSTRAINT queues_state_check;
    ALTER TABLE queues ADD CONSTRAINT queues_state_check
      CHECK (state IN ('RUNNING','PAUSED','SUCCESS','ERROR','REVOKED','WAITING'));
    ALTER TABLE queues ADD COLUMN batch_id text;
    ALTER TABLE queues ADD COLUMN pending_deps integer NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN release_delay bigint NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN has_dependents integer NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN callback_due integer NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN ref text;
    CREATE INDEX queues_batch ON queues (batch_id) WHERE batch_id IS NOT NULL;
    CREATE INDEX queues_callback_due ON queues (id) WHERE callback_due = 1;

    CREATE OR REPLACE FUNCTION queues_active_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks + d.n
        FROM (SELECT owner_id, count(*) AS n FROM added
               WHERE state IN ('RUNNING', 'PAUSED', 'WAITING') GROUP BY owner_id) d
       WHERE o.id = d.owner_id;
      RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION queues_active_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks - d.n
        FROM (SELECT owner_id, count(*) AS n FROM removed
               WHERE state IN ('RUNNING', 'PAUSED', 'WAITING') GROUP BY owner_id) d
       WHERE o.id = d.owner_id;
      RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION queues_active_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE owners o SET active_tasks = o.active_tasks + d.n
        FROM (SELECT owner_id, sum(n) AS n
                FROM (SELECT owner_id, count(*) AS n FROM after_rows
                       WHERE state IN ('RUNNING', 'PAUSED', 'WAITING') GROUP BY owner_id
                      UNION ALL
                      SELECT owner_id, -count(*) FROM before_rows
                       WHERE state IN ('RUNNING', 'PAUSED', 'WAITING') GROUP BY owner_id) counted
               GROUP BY owner_id) d
       WHERE o.id = d.owner_id AND d.n <> 0;
      RETURN NULL;
    END $$;

    CREATE TABLE dependencies (
        queue_id text NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        depends_on text NOT NULL,
        name text NOT NULL,
        require_success integer NOT NULL,
        PRIMARY KEY (queue_id, depends_on)
    );
    CREATE INDEX dependencies_parent ON dependencies (depends_on);
    ALTER TABLE attempts ADD COLUMN sent bytea
    """,
    # 9: labels, list columns and per-minute stats (SQLite migration 9). The stats rows are
    # spread over `slot`s by connection, so completers on several nodes rarely wait for one
    # another's row locks; the stats route sums the slots.
    """
    ALTER TABLE queues ADD COLUMN labels text, ADD COLUMN method text, ADD COLUMN target text,
      ADD COLUMN destination text, ADD COLUMN outcome text;
    ALTER TABLE schedules ADD COLUMN labels text;
    CREATE INDEX queues_owner_status ON queues (owner_id, status_code, created_at);
    CREATE INDEX queues_owner_outcome ON queues (owner_id, outcome, created_at)
      WHERE outcome IS NOT NULL;

    CREATE TABLE queue_labels (
        queue_id text NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
        owner_id text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (queue_id, key)
    );
    CREATE INDEX queue_labels_find ON queue_labels (owner_id, key, value);

    CREATE FUNCTION queues_labels_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO queue_labels (queue_id, owner_id, key, value)
      SELECT a.id, a.owner_id, l.key, l.value
        FROM added a, jsonb_each_text(a.labels::jsonb) l WHERE a.labels IS NOT NULL;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_labels_added AFTER INSERT ON queues
      REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION queues_labels_added();

    CREATE FUNCTION queues_labels_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM queue_labels WHERE queue_id = NEW.id;
      INSERT INTO queue_labels (queue_id, owner_id, key, value)
      SELECT NEW.id, NEW.owner_id, l.key, l.value
        FROM jsonb_each_text(coalesce(NEW.labels, '{}')::jsonb) l;
      RETURN NULL;
    END $$;
    CREATE TRIGGER queues_labels_changed AFTER UPDATE OF labels ON queues
      FOR EACH ROW WHEN (OLD.labels IS DISTINCT FROM NEW.labels)
      EXECUTE FUNCTION queues_labels_changed();

    CREATE TABLE stats_attempts (
        owner_id text NOT NULL,
        minute bigint NOT NULL,
        outcome text NOT NULL,
        slot integer NOT NULL,
        attempts bigint NOT NULL,
        PRIMARY KEY (owner_id, minute, outcome, slot)
    );
    CREATE TABLE stats_lateness (
        owner_id text NOT NULL,
        minute bigint NOT NULL,
        bucket integer NOT NULL,
        slot integer NOT NULL,
        attempts bigint NOT NULL,
        PRIMARY KEY (owner_id, minute, bucket, slot)
    );
    CREATE TABLE stats_failures (
        owner_id text NOT NULL,
        minute bigint NOT NULL,
        destination text NOT NULL,
        slot integer NOT NULL,
        failures bigint NOT NULL,
        PRIMARY KEY (owner_id, minute, destination, slot)
    );

    -- Every update of attempts closes open ones (finished_at was 0): the rows it leaves
    -- finished are the attempts it closed. Rows are upserted in key order, so two
    -- statements sharing a slot wait for each other but never deadlock.
    CREATE FUNCTION attempts_closed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      WITH c AS MATERIALIZED (
        SELECT c.queue_id, c.attempt, c.outcome, c.finished_at / 60000 * 60000 AS minute,
               c.started_at - c.due_at AS late, q.owner_id, q.destination,
               pg_backend_pid() % 16 AS slot
          FROM closed c JOIN queues q ON q.id = c.queue_id
         WHERE c.finished_at <> 0 AND c.outcome <> 'IN_FLIGHT'),
      last_outcome AS (
        UPDATE queues q SET outcome = l.outcome
          FROM (SELECT DISTINCT ON (queue_id) queue_id, outcome FROM c
                 ORDER BY queue_id, attempt DESC) l
         WHERE q.id = l.queue_id AND q.outcome IS DISTINCT FROM l.outcome),
      by_outcome AS (
        INSERT INTO stats_attempts AS s (owner_id, minute, outcome, slot, attempts)
        SELECT owner_id, minute, outcome, slot, count(*) FROM c
         GROUP BY owner_id, minute, outcome, slot ORDER BY owner_id, minute, outcome
        ON CONFLICT (owner_id, minute, outcome, slot)
          DO UPDATE SET attempts = s.attempts + excluded.attempts),
      by_lateness AS (
        INSERT INTO stats_lateness AS s (owner_id, minute, bucket, slot, attempts)
        SELECT owner_id, minute, bucket, slot, count(*)
          FROM (SELECT owner_id, minute, slot,
                 (late > 0)::int + (late > 1)::int + (late > 2)::int + (late > 5)::int
                 + (late > 10)::int + (late > 20)::int + (late > 50)::int + (late > 100)::int
                 + (late > 200)::int + (late > 500)::int + (late > 1000)::int
                 + (late > 2000)::int + (late > 5000)::int + (late > 10000)::int
                 + (late > 30000)::int + (late > 60000)::int + (late > 300000)::int
                 + (late > 3600000)::int AS bucket
                  FROM c) b
         GROUP BY owner_id, minute, bucket, slot ORDER BY owner_id, minute, bucket
        ON CONFLICT (owner_id, minute, bucket, slot)
          DO UPDATE SET attempts = s.attempts + excluded.attempts)
      INSERT INTO stats_failures AS s (owner_id, minute, destination, slot, failures)
      SELECT owner_id, minute, destination, slot, count(*) FROM c
       WHERE destination IS NOT NULL
         AND outcome IN ('FAILURE', 'TIMEOUT', 'TOO_LARGE', 'TRANSPORT')
       GROUP BY owner_id, minute, destination, slot ORDER BY owner_id, minute, destination
      ON CONFLICT (owner_id, minute, destination, slot)
        DO UPDATE SET failures = s.failures + excluded.failures;
      RETURN NULL;
    END $$;
    CREATE TRIGGER attempts_closed AFTER UPDATE ON attempts
      REFERENCING NEW TABLE AS closed FOR EACH STATEMENT EXECUTE FUNCTION attempts_closed()
    """,
    # 10: destinations' circuits (SQLite migration 10).
    """
    CREATE TABLE destinations (
        id text PRIMARY KEY,
        owner_id text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
        address bytea NOT NULL,
        failures integer NOT NULL DEFAULT 0,
        open_until bigint NOT NULL DEFAULT 0,
        open_ms bigint NOT NULL DEFAULT 0,
        probe_until bigint NOT NULL DEFAULT 0,
        last_error bytea,
        updated_at bigint NOT NULL
    );
    CREATE INDEX destinations_owner ON destinations (owner_id, updated_at);
    CREATE INDEX destinations_open ON destinations (open_until) WHERE open_until > 0
    """,
    # 11: the overview's aggregates in one table, counted by the outcome write (SQLite
    # migration 11). `slot` spreads one owner's minute over 16 rows, so nodes counting at
    # once rarely wait for each other's row.
    """
    CREATE TABLE stats_counts (
        owner_id text NOT NULL,
        kind text NOT NULL,
        minute bigint NOT NULL,
        key text NOT NULL,
        slot integer NOT NULL DEFAULT 0,
        n bigint NOT NULL,
        PRIMARY KEY (owner_id, kind, minute, key, slot)
    );
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'outcome', minute, outcome, sum(attempts) FROM stats_attempts
     GROUP BY owner_id, minute, outcome;
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'lateness', minute, bucket::text, sum(attempts) FROM stats_lateness
     GROUP BY owner_id, minute, bucket;
    INSERT INTO stats_counts (owner_id, kind, minute, key, n)
    SELECT owner_id, 'failure', minute, destination, sum(failures) FROM stats_failures
     GROUP BY owner_id, minute, destination;
    DROP TRIGGER attempts_closed ON attempts;
    DROP FUNCTION attempts_closed();
    DROP TABLE stats_attempts;
    DROP TABLE stats_lateness;
    DROP TABLE stats_failures
    """,
    # 12: the store's clock rounded down to the millisecond, as SQLite's: rounded to the
    # nearest, it read up to half a millisecond ahead, and requests left that early.
    """
    CREATE OR REPLACE FUNCTION tasks_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
      $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$
    """,
    # 13: opening an attempt writes no task row (SQLite migration 12): counting it there was
    # a new version of the row in every index of `queues`, and a second trigger on it, for a
    # number the attempts' own key gives.
    """
    DROP TRIGGER attempts_counted ON attempts;
    DROP FUNCTION attempts_counted()
    """,
)

# --- migrations ---------------------------------------------------------------------------

# Every node migrates at start; the advisory lock makes them take turns.
MIGRATION_LOCK = "SELECT pg_advisory_lock($1)"
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock($1)"
CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
CURRENT_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
RECORD_VERSION = "INSERT INTO schema_migrations (version) VALUES ($1)"
