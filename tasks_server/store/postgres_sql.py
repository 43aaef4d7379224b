"""The PostgreSQL store's schema migrations and statements (``$n`` parameters).

The schema has the meaning of SQLite migrations 1 and 2 (``schema.py``): times are epoch
milliseconds (bigint), encrypted blobs are bytea, and the owner's count of RUNNING/PAUSED
tasks is kept by a trigger in the same transaction as every change. Lease and due
comparisons use the database's clock (`tasks_now_ms()`), so nodes with skewed clocks agree.
Append a migration to change the schema; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Iterable

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

# --- service ------------------------------------------------------------------------------

PING = "SELECT 1"
NOW_MS = "SELECT tasks_now_ms()"
TRY_LEADER = "SELECT pg_try_advisory_lock($1)"
# Client changes are announced to every node; the payload is "<queue id> <version>" (the
# version -1 for a deleted task).
CHANNEL = "tasks_server_changes"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', $1)"

# --- meta (the cipher check value) --------------------------------------------------------

CIPHER_CHECK = "cipher_check"
# Locked, so nodes starting together record one value (the first to commit wins).
LOCK_META_TABLE = "LOCK TABLE meta IN EXCLUSIVE MODE"
SELECT_META = "SELECT value FROM meta WHERE name = $1"
INSERT_META = "INSERT INTO meta (name, value) VALUES ($1, $2)"
HAS_DATA = "SELECT EXISTS (SELECT 1 FROM owners) OR EXISTS (SELECT 1 FROM queues)"
SEALED_SAMPLE = "SELECT id, request FROM queues LIMIT 1"

# --- keys in plain text from before SPEC §15.7 (see `key_digests`) --------------------------

# Nodes starting together wait on the mark's row: the first digests, the others find no mark.
TAKE_PLAIN_KEYS_MARK = "DELETE FROM meta WHERE name = 'plain_keys' RETURNING name"
SELECT_PLAIN_IDEMPOTENCY = "SELECT owner_id, key FROM idempotency"
DIGEST_IDEMPOTENCY = """
UPDATE idempotency i SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE i.owner_id = d.owner_id AND i.key = d.key
"""
SELECT_PLAIN_FLOWS = "SELECT owner_id, key FROM flows"
DIGEST_FLOWS = """
UPDATE flows f SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE f.owner_id = d.owner_id AND f.key = d.key
"""
SELECT_PLAIN_QUEUE_FLOWS = (
    "SELECT DISTINCT owner_id, flow_key FROM queues WHERE flow_key IS NOT NULL"
)
DIGEST_QUEUE_FLOWS = """
UPDATE queues q SET flow_key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE q.owner_id = d.owner_id AND q.flow_key = d.key
"""

# --- owners -------------------------------------------------------------------------------

INSERT_OWNER = """
INSERT INTO owners (id, name, key_digest, signing_secret, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING RETURNING id
"""
SELECT_KEY_DIGESTS = (
    "SELECT key_digest, previous_key_digest, previous_key_until FROM owners WHERE id = $1"
)
ROTATE_KEY = """
UPDATE owners SET previous_key_digest = key_digest, previous_key_until = $1, key_digest = $2
 WHERE id = $3 AND name = $4 RETURNING id
"""
SELECT_SIGNING = """
SELECT signing_secret, previous_signing_secret, previous_signing_until FROM owners WHERE id = $1
"""
SET_MISSING_SIGNING = (
    "UPDATE owners SET signing_secret = $1 WHERE id = $2 AND signing_secret IS NULL"
)
LOCK_SIGNING_BY_NAME = "SELECT signing_secret FROM owners WHERE id = $1 AND name = $2 FOR UPDATE"
ROTATE_SIGNING = """
UPDATE owners SET previous_signing_secret = $1, previous_signing_until = $2, signing_secret = $3
 WHERE id = $4
"""
SELECT_OWNER = "SELECT id, name, created_at, active_tasks FROM owners WHERE id = $1 AND name = $2"
LOCK_OWNER_ACTIVE = "SELECT active_tasks FROM owners WHERE id = $1 AND name = $2 FOR UPDATE"
DELETE_OWNER = "DELETE FROM owners WHERE id = $1"

# --- idempotent registration ------------------------------------------------------------

# Registrations of one owner take turns on its row, so concurrent repeats of a key on any
# node store exactly one task; each also deletes a few expired keys (rows others are
# deleting are skipped, never waited for).
LOCK_OWNER = "SELECT 1 FROM owners WHERE id = $1 FOR UPDATE"
SELECT_IDEMPOTENCY = """
SELECT body_digest, queue_id FROM idempotency
 WHERE owner_id = $1 AND key = $2 AND expires_at > $3
"""
UPSERT_IDEMPOTENCY = """
INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner_id, key) DO UPDATE
   SET body_digest = excluded.body_digest, queue_id = excluded.queue_id,
       expires_at = excluded.expires_at
"""
PURGE_IDEMPOTENCY = """
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM idempotency WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM idempotency USING doomed WHERE idempotency.ctid = doomed.ctid
"""
IDEMPOTENCY_PURGE_BATCH = 8

# --- tasks --------------------------------------------------------------------------------

IN_FLIGHT = "EXISTS (SELECT 1 FROM attempts a WHERE a.queue_id = queues.id AND a.finished_at = 0)"
COLUMNS = (
    "id, owner_id, state, created_at, status_code, estimate_execution_at, estimate_end_at, "
    "paused_at, retry_count, retry_limit, version, request, metadata, response, attempts, "
    f"schedule_id, {IN_FLIGHT}, callback_of, callback_id"
)
DUE_COLUMNS = (
    "id, owner_id, estimate_execution_at, retry_count, retry_limit, version, attempts, request"
)
SUMMARY_COLUMNS = (
    "id, state, created_at, status_code, estimate_execution_at, estimate_end_at, schedule_id"
)
ORDER_COLUMNS = {
    "createdAt": "created_at",
    "estimateEndAt": "estimate_end_at",
    "estimateExecutionAt": "estimate_execution_at",
}
ACTIVE = ("RUNNING", "PAUSED")
# The owner row is locked first, so concurrent registrations on any node count exactly.
OWNER_HAS_ROOM = "SELECT active_tasks < $2 FROM owners WHERE id = $1 FOR UPDATE"
# $9: how long the pre-claim lease lasts (ms), measured from the database clock.
INSERT_QUEUE = f"""
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate)
VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8,
        CASE WHEN $8::text IS NULL THEN NULL ELSE tasks_now_ms() + $9::bigint END,
        $10, $11, $12)
RETURNING {COLUMNS}
"""
SELECT_QUEUE = f"SELECT {COLUMNS} FROM queues WHERE id = $1 AND owner_id = $2"
LOCK_QUEUE = f"SELECT {COLUMNS} FROM queues WHERE id = $1 AND owner_id = $2 FOR UPDATE OF queues"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM queues WHERE id = $1"
DELETE_QUEUE = "DELETE FROM queues WHERE id = $1 AND owner_id = $2 RETURNING id"
SELECT_IDS_IN_STATE = (
    "SELECT id FROM queues WHERE owner_id = $1 AND state = $2 ORDER BY created_at, id LIMIT $3"
)
COUNT_IN_STATE = "SELECT count(*) FROM queues WHERE owner_id = $1 AND state = $2"
SELECT_ATTEMPTS = """
SELECT attempt, due_at, started_at, finished_at, status_code, outcome, error, response
  FROM attempts WHERE queue_id = $1 ORDER BY attempt LIMIT $2 OFFSET $3
"""


def list_for_owner(filters: Iterable[str], *, order: str, descending: bool) -> str:
    """The summary list of one owner's tasks: $1 owner, then one parameter per filter column
    (`state`, `schedule_id`), then limit and offset."""
    column = ORDER_COLUMNS[order]
    direction = "DESC" if descending else "ASC"
    where = ["owner_id = $1"]
    for name in filters:
        if name not in ("state", "schedule_id"):
            raise ValueError(f"not a filter: {name}")
        where.append(f"{name} = ${len(where) + 1}")
    n = len(where) + 1
    return (
        f"SELECT {SUMMARY_COLUMNS} FROM queues WHERE {' AND '.join(where)} "
        f"ORDER BY {column} {direction}, id {direction} LIMIT ${n} OFFSET ${n + 1}"
    )


def update_queue(columns: Iterable[str]) -> str:
    """Set `columns` ($1…$n, a lifecycle change's), bump the version; id is $n+1."""
    names = list(columns)
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, 1))
    return (
        f"UPDATE queues SET {assignments}, version = version + 1 "
        f"WHERE id = ${len(names) + 1} RETURNING {COLUMNS}"
    )


# --- schedules ----------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "id, owner_id, state, cron, timezone, created_at, next_run_at, last_run_at, last_queue_id, "
    "version, request, metadata"
)
# Counted after LOCK_OWNER, in a statement of its own: a subquery of the locking statement
# would read the snapshot from before the wait for the lock, and miss the schedules the
# previous holder of the lock added.
COUNT_OWNER_SCHEDULES = "SELECT count(*) FROM schedules WHERE owner_id = $1"
INSERT_SCHEDULE = f"""
INSERT INTO schedules (id, owner_id, state, cron, timezone, created_at, next_run_at, request,
                       metadata)
VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $8)
RETURNING {SCHEDULE_COLUMNS}
"""
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND owner_id = $2"
LOCK_SCHEDULE = f"{SELECT_SCHEDULE} FOR UPDATE"
LIST_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE owner_id = $1 ORDER BY created_at, id
 LIMIT $2 OFFSET $3
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE id = $1 AND owner_id = $2 RETURNING id"
DUE_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
 WHERE state = 'ACTIVE' AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2
"""
# A fire applies only to the schedule as it was read: a change or another fire meanwhile wins.
LOCK_CURRENT_SCHEDULE = """
SELECT 1 FROM schedules WHERE id = $1 AND state = 'ACTIVE' AND version = $2 AND next_run_at = $3
   FOR UPDATE
"""
INSERT_FIRED = f"""
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, schedule_id, scheduled_for, flow_key,
                    flow_parallelism, flow_rate)
VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
RETURNING {COLUMNS}
"""
ADVANCE_SCHEDULE = "UPDATE schedules SET next_run_at = $1 WHERE id = $2"
FIRED = "UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_queue_id = $3 WHERE id = $4"
COUNT_ACTIVE_SCHEDULES = "SELECT count(*) FROM schedules WHERE state = 'ACTIVE'"
SCHEDULE_CHANGEABLE = frozenset({"state", "cron", "timezone", "next_run_at", "request", "metadata"})


def update_schedule(columns: Iterable[str]) -> str:
    """Set `columns` ($1…$n, checked), bump the version; the schedule id is $n+1."""
    names = list(columns)
    unknown = set(names) - SCHEDULE_CHANGEABLE
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, 1))
    return (
        f"UPDATE schedules SET {assignments}, version = version + 1 "
        f"WHERE id = ${len(names) + 1} RETURNING {SCHEDULE_COLUMNS}"
    )


# --- the scheduler ------------------------------------------------------------------------

CLAIMABLE = """(q.lease_owner IS NULL OR q.lease_until < clock.now)
     AND NOT EXISTS (SELECT 1 FROM attempts a
                      WHERE a.queue_id = q.id AND a.finished_at = 0 AND a.holder = $1)"""
# A lease passes on only once expired (on the database clock), never to a task whose attempt
# this holder still runs; rows another node is claiming right now are skipped, not waited for.
CLAIM = f"""
WITH clock AS (SELECT tasks_now_ms() AS now),
picked AS (
  SELECT q.id FROM queues q, clock
   WHERE q.state = 'RUNNING' AND q.estimate_execution_at <= clock.now + $2
     AND q.flow_key IS NULL AND {CLAIMABLE}
   ORDER BY q.estimate_execution_at LIMIT $4
   FOR UPDATE OF q SKIP LOCKED)
UPDATE queues SET lease_owner = $1, lease_until = clock.now + $3
  FROM picked, clock WHERE queues.id = picked.id
RETURNING {", ".join(f"queues.{c.strip()}" for c in DUE_COLUMNS.split(","))}
"""
NOW = "SELECT tasks_now_ms()"
# Flow keys (owner, key) with a waiting task their limits could lease now, earliest first
# ($1 now, $2 horizon, $3 limit). Read without locks: each key is locked and checked again.
FLOW_KEYS_READY = """
SELECT q.owner_id, q.flow_key FROM queues q
  LEFT JOIN flows f ON f.owner_id = q.owner_id AND f.key = q.flow_key
 WHERE q.state = 'RUNNING' AND q.flow_key IS NOT NULL AND q.estimate_execution_at <= $2
   AND (q.lease_owner IS NULL OR q.lease_until < $1)
 GROUP BY q.owner_id, q.flow_key
HAVING coalesce(max(f.next_start_at), 0) <= $2
   AND (max(q.flow_parallelism) IS NULL OR max(q.flow_parallelism) > (
        SELECT count(*) FROM queues b
         WHERE b.owner_id = q.owner_id AND b.flow_key = q.flow_key AND b.state = 'RUNNING'
           AND b.lease_until >= $1))
 ORDER BY min(q.estimate_execution_at) LIMIT $3
"""
# The key's row is its lock: claims of one key, on any node, take turns. One statement
# makes the row and locks it: between an insert and a separate SELECT ... FOR UPDATE, the
# retention purge could delete an idle key's row.
LOCK_FLOW = """
INSERT INTO flows AS f (owner_id, key) VALUES ($1, $2)
    ON CONFLICT (owner_id, key) DO UPDATE SET next_start_at = f.next_start_at
RETURNING next_start_at
"""
FLOW_BUSY = """
SELECT count(*) FROM queues
 WHERE owner_id = $1 AND flow_key = $2 AND state = 'RUNNING' AND lease_until >= $3
"""
# $1 holder, $2 owner, $3 key, $4 horizon, $5 limit.
FLOW_CANDIDATES = f"""
WITH clock AS (SELECT tasks_now_ms() AS now)
SELECT {", ".join(f"q.{c.strip()}" for c in DUE_COLUMNS.split(","))},
       q.flow_key, q.flow_parallelism, q.flow_rate
  FROM queues q, clock
 WHERE q.owner_id = $2 AND q.flow_key = $3 AND q.state = 'RUNNING'
   AND q.estimate_execution_at <= $4 AND {CLAIMABLE}
 ORDER BY q.estimate_execution_at, q.id LIMIT $5
   FOR UPDATE OF q SKIP LOCKED
"""
LEASE = "UPDATE queues SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3::text[])"
FLOW_ADVANCE = "UPDATE flows SET next_start_at = $1 WHERE owner_id = $2 AND key = $3"
# Attempts left open by a holder whose lease expired (a dead node) end when claimed again.
INTERRUPT_CLAIMED = """
UPDATE attempts SET finished_at = tasks_now_ms(), outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder <> $1 AND queue_id = ANY($2::text[])
"""
# The queue row is locked before the attempt row everywhere, so two transactions never wait
# on each other in opposite orders. The start and the common outcome are one statement each
# (its own transaction, one round trip); reading `counted` or `applied` makes the queue
# row's update run, so lock, first.
START_ATTEMPT = """
WITH counted AS (
  UPDATE queues SET attempts = attempts + 1
   WHERE id = $1 AND lease_owner = $2 AND version = $3 AND state = 'RUNNING'
  RETURNING id, attempts, estimate_execution_at)
INSERT INTO attempts (queue_id, attempt, holder, due_at, started_at)
SELECT id, attempts, $2, estimate_execution_at, $4 FROM counted
RETURNING attempt
"""
# $1 state (NULL: a retry at $5), $2 status, $3 response, $4 finished at, $6 id, $7 holder,
# $8 version, $9 attempt, $10 outcome, $11 error, $12 the attempt's status. The attempt row
# closes either way.
RECORD_OUTCOME = """
WITH applied AS (
  UPDATE queues SET state = coalesce($1::text, state), status_code = $2, response = $3,
         estimate_end_at = CASE WHEN $1::text IS NULL THEN estimate_end_at ELSE $4 END,
         estimate_execution_at = coalesce($5, estimate_execution_at),
         retry_count = retry_count + CASE WHEN $1::text IS NULL THEN 1 ELSE 0 END,
         lease_owner = NULL, lease_until = NULL, version = version + 1
   WHERE id = $6 AND lease_owner = $7 AND version = $8
  RETURNING id),
closed AS (
  UPDATE attempts SET finished_at = $4, status_code = $12, outcome = $10, error = $11,
         response = $3
   WHERE queue_id = $6 AND attempt = $9 AND finished_at = 0
     AND (SELECT count(*) FROM applied) >= 0)
SELECT count(*) FROM applied
"""
FINISH = """
UPDATE queues SET state = $1, status_code = $2, response = $3, estimate_end_at = $4,
                  lease_owner = NULL, lease_until = NULL, version = version + 1
 WHERE id = $5 AND lease_owner = $6 AND version = $7
"""
RETRY_LATER = """
UPDATE queues SET status_code = $1, response = $2, retry_count = retry_count + 1,
                  estimate_execution_at = $3, lease_owner = NULL, lease_until = NULL,
                  version = version + 1
 WHERE id = $4 AND lease_owner = $5 AND version = $6
"""
# A callback's task (SPEC §11.2), inserted with the outcome it reports: past the owner's limit,
# since a consequence of an accepted task must never fail.
INSERT_CALLBACK = """
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of)
VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8)
"""
SET_CALLBACK_ID = "UPDATE queues SET callback_id = $1 WHERE id = $2"
# `insert_many`, one array per column: the owner's room for all of them is checked first, in
# the same transaction.
INSERT_TASKS = """
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate)
SELECT id, owner_id, 'RUNNING', created_at, due, retry_limit, request, metadata, flow_key,
       flow_parallelism, flow_rate
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
              $7::bytea[], $8::text[], $9::integer[], $10::double precision[])
    AS tasks (id, owner_id, created_at, due, retry_limit, request, metadata, flow_key,
              flow_parallelism, flow_rate)
"""
CLOSE_ATTEMPT = """
UPDATE attempts SET finished_at = $3, status_code = $4, outcome = $5, error = $6, response = $7
 WHERE queue_id = $1 AND attempt = $2 AND finished_at = 0
"""
PRUNE_ATTEMPTS = "DELETE FROM attempts WHERE queue_id = $1 AND attempt <= $2"
ABORT_OPEN = """
UPDATE attempts SET finished_at = $1, outcome = 'ABORTED'
 WHERE queue_id = $2 AND holder = $3 AND attempt = $4 AND started_at = $5 AND finished_at = 0
"""
RENEW_LEASES = """
UPDATE queues SET lease_until = tasks_now_ms() + $3
 WHERE lease_owner = $1 AND id = ANY($2::text[])
"""
RELEASE_LEASE = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2"
)
RELEASE_LEASES_OF = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1"
)
INTERRUPT_OPEN_OF = """
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED' WHERE finished_at = 0 AND holder = $2
"""
INTERRUPT_OPEN_OF_TASK = """
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED'
 WHERE queue_id = $2 AND holder = $3 AND finished_at = 0
"""
RELEASE_ALL_LEASES = (
    "UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL"
)
LEASED_VERSIONS = "SELECT id, state, version FROM queues WHERE lease_owner = $1"

# --- jobs and metrics ---------------------------------------------------------------------

# A batch is chosen once (MATERIALIZED): `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` may
# run its subquery more than once, and then deletes more than n rows.
PURGE_FINISHED = """
WITH doomed AS MATERIALIZED (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < $1
   LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM queues USING doomed WHERE queues.id = doomed.id
"""
# A key's row only keeps its next start: once that is past, no row means the same.
PURGE_IDLE_FLOWS = """
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM flows WHERE next_start_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM flows USING doomed WHERE flows.ctid = doomed.ctid
"""
COUNT_BY_STATE = "SELECT state, count(*) FROM queues GROUP BY state"
COUNT_OVERDUE = f"""
SELECT count(*) FROM queues
 WHERE state = 'RUNNING' AND estimate_execution_at < $1 AND NOT {IN_FLIGHT}
"""
COUNT_ACTIVE_BY_OWNER = """
SELECT owners.id, owners.active_tasks,
       (SELECT count(*) FROM queues
         WHERE owner_id = owners.id AND state IN ('RUNNING', 'PAUSED'))
  FROM owners
"""
