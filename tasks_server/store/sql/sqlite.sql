-- SQLite's statements (see store/queries.py). SQLite has one writer: a statement that locks
-- on PostgreSQL only has to read here. `{values}` is a table of rows, bound as a VALUES list
-- (columns column1, column2…); an array is a JSON array (`json_each`).

-- --- the driver's own --------------------------------------------------------------------

-- /health's write: one row rewritten, so each probe appends to the WAL as a registration does.
-- name: probe_write
INSERT OR REPLACE INTO meta (name, value) VALUES ('write_probe', x'')

-- --- meta --------------------------------------------------------------------------------

-- The writer is alone: nothing to lock.
-- name: lock_meta
SELECT 1

-- The cells the digests free are zeroed, so plain keys do not linger in the file's free
-- space (for the rest of the writer connection's life).
-- name: erase_freed
PRAGMA secure_delete = ON

-- name: digest_idempotency
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE idempotency SET key = d.digest
  FROM d WHERE idempotency.owner_id = d.owner_id AND idempotency.key = d.key

-- name: digest_flows
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE flows SET key = d.digest FROM d WHERE flows.owner_id = d.owner_id AND flows.key = d.key

-- name: digest_queue_flows
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE queues SET flow_key = d.digest
  FROM d WHERE queues.owner_id = d.owner_id AND queues.flow_key = d.key

-- --- owners ------------------------------------------------------------------------------

-- name: lock_signing_by_name
SELECT signing_secret FROM owners WHERE id = $1 AND name = $2

-- name: lock_owner_active
SELECT active_tasks FROM owners WHERE id = $1 AND name = $2

-- name: lock_owner
SELECT 1 FROM owners WHERE id = $1

-- name: owner_has_room
SELECT active_tasks < $2 FROM owners WHERE id = $1

-- --- idempotent registration -------------------------------------------------------------

-- name: purge_idempotency
DELETE FROM idempotency
 WHERE rowid IN (SELECT rowid FROM idempotency WHERE expires_at <= $1 LIMIT $2)

-- --- tasks -------------------------------------------------------------------------------

-- $8 the pre-claiming holder, $9 how long its lease lasts from $3 (now); inserted only while
-- the owner ($2) holds fewer than $13 active tasks; $14… its `Listing`.
-- name: insert_queue
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate, labels, method, target, destination)
SELECT $1, owners.id, 'RUNNING', $3, $4, $5, $6, $7, $8,
       CASE WHEN $8 IS NULL THEN NULL ELSE $3 + $9 END,
       $10, $11, $12, $14, $15, $16, $17
  FROM owners WHERE owners.id = $2 AND owners.active_tasks < $13
RETURNING @COLUMNS@

-- name: insert_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate, labels, method,
                    target, destination)
SELECT column1, column2, 'RUNNING', column3, column4, column5, column6, column7, column8,
       column9, column10, column11, column12, column13, column14
  FROM (VALUES {values})

-- name: lock_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2

-- --- schedules ---------------------------------------------------------------------------

-- name: lock_schedule
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE id = $1 AND owner_id = $2

-- name: lock_current_schedule
SELECT 1 FROM schedules WHERE id = $1 AND state = 'ACTIVE' AND version = $2 AND next_run_at = $3

-- --- the scheduler -----------------------------------------------------------------------

-- $1 holder, $2 now, $3 horizon, $4 lease until, $5 limit. A lease passes on only once
-- expired, and never to a task whose attempt this holder still runs: after a forward clock
-- step its own leases look expired (SPEC §3.5).
-- name: claim
UPDATE queues SET lease_owner = $1, lease_until = $4
 WHERE id IN (SELECT id FROM queues
               WHERE state = 'RUNNING' AND estimate_execution_at <= $3 AND flow_key IS NULL
                 AND (lease_owner IS NULL OR lease_until < $2)
                 AND NOT EXISTS (SELECT 1 FROM attempts a
                                  WHERE a.queue_id = queues.id AND a.finished_at = 0
                                    AND a.holder = $1)
               ORDER BY estimate_execution_at LIMIT $5)
RETURNING @DUE_COLUMNS@

-- name: lock_flow
SELECT next_start_at FROM flows WHERE owner_id = $1 AND key = $2

-- $1 holder, $2 owner, $3 key, $4 now, $5 horizon, $6 limit.
-- name: flow_candidates
SELECT @DUE_COLUMNS@, flow_key, flow_parallelism, flow_rate FROM queues
 WHERE owner_id = $2 AND flow_key = $3 AND state = 'RUNNING' AND estimate_execution_at <= $5
   AND (lease_owner IS NULL OR lease_until < $4)
   AND NOT EXISTS (SELECT 1 FROM attempts a
                    WHERE a.queue_id = queues.id AND a.finished_at = 0 AND a.holder = $1)
 ORDER BY estimate_execution_at, id LIMIT $6

-- name: lease
UPDATE queues SET lease_owner = $1, lease_until = $2 WHERE id IN (SELECT value FROM json_each($3))

-- Attempts left open by a holder whose lease expired (a dead process) end when claimed again.
-- name: interrupt_claimed
UPDATE attempts SET finished_at = $2, outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder != $1 AND queue_id IN (SELECT value FROM json_each($3))
RETURNING @CLOSED@

-- Rows (id, holder, version, now): the attempts of the tasks still held as they were claimed
-- open, numbered after the stored count, which a stale `Due` may lag (the row's trigger
-- counts it: migration 6).
-- name: open_attempts
WITH v(id, holder, version, now) AS (VALUES {values})
INSERT INTO attempts (queue_id, attempt, holder, due_at, started_at)
SELECT q.id, @NEXT_ATTEMPT@, v.holder, q.estimate_execution_at, v.now
  FROM v JOIN queues q ON q.id = v.id
 WHERE q.lease_owner = v.holder AND q.version = v.version AND q.state = 'RUNNING'
RETURNING queue_id, attempt

-- Rows (id, holder, version, state, status, response, now, retry at, outcome, attempt): an
-- ending outcome (`state` set) finishes the task, otherwise it retries at `retry at`. An
-- outcome applies only for the version it was run with, by the lease's holder.
-- name: record_outcomes
WITH v(id, holder, version, state, status_code, response, now, retry_at, outcome, attempt)
  AS (VALUES {values})
UPDATE queues SET state = coalesce(v.state, queues.state), status_code = v.status_code,
                  response = v.response, outcome = v.outcome,
                  attempts = max(queues.attempts, v.attempt),
                  estimate_end_at = iif(v.state IS NULL, queues.estimate_end_at, v.now),
                  estimate_execution_at = iif(v.state IS NULL, v.retry_at,
                                              queues.estimate_execution_at),
                  retry_count = queues.retry_count + (v.state IS NULL),
                  lease_owner = NULL, lease_until = NULL, version = queues.version + 1
  FROM v WHERE queues.id = v.id AND queues.lease_owner = v.holder AND queues.version = v.version
RETURNING queues.id, queues.has_dependents

-- Rows (id, attempt, finished at, status, outcome, error, response, what was sent).
-- name: close_attempts
WITH v(id, attempt, now, status_code, outcome, error, response, sent) AS (VALUES {values})
UPDATE attempts SET finished_at = v.now, status_code = v.status_code, outcome = v.outcome,
                    error = v.error, response = v.response, sent = v.sent
  FROM v WHERE attempts.queue_id = v.id AND attempts.attempt = v.attempt
               AND attempts.finished_at = 0
RETURNING @CLOSED@

-- Rows (id, minute, outcome, lateness bucket, failed): closed attempts, counted in their
-- owner's minute by outcome, by lateness and (failed) by destination.
-- name: count_attempts
WITH v(id, minute, outcome, bucket, failed) AS (VALUES {values})
INSERT INTO stats_counts (owner_id, kind, minute, key, n)
SELECT q.owner_id, k.kind, v.minute,
       CASE k.kind WHEN 'outcome' THEN v.outcome WHEN 'lateness' THEN v.bucket
                   ELSE q.destination END AS key,
       count(*)
  FROM v JOIN queues q ON q.id = v.id
 CROSS JOIN (SELECT 'outcome' AS kind UNION ALL SELECT 'lateness'
             UNION ALL SELECT 'failure') k
 WHERE k.kind != 'failure' OR (v.failed AND q.destination IS NOT NULL)
 GROUP BY 1, 2, 3, 4
ON CONFLICT DO UPDATE SET n = n + excluded.n

-- Rows (id, owner, created at, due, retry limit, request, metadata, the task it reports on,
-- then its `Listing`).
-- name: insert_callbacks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of, labels, method, target, destination)
SELECT column1, column2, 'RUNNING', column3, column4, column5, column6, column7, column8,
       column9, column10, column11, column12
  FROM (VALUES {values})

-- Rows (callback id, task id).
-- name: set_callback_ids
WITH v(callback_id, id) AS (VALUES {values})
UPDATE queues SET callback_id = v.callback_id FROM v WHERE queues.id = v.id

-- Rows (id, the last attempt number to delete).
-- name: prune_attempts
WITH v(id, upto) AS (VALUES {values})
DELETE FROM attempts
 WHERE EXISTS (SELECT 1 FROM v WHERE v.id = attempts.queue_id AND attempts.attempt <= v.upto)

-- name: renew_leases
UPDATE queues SET lease_until = $3
 WHERE lease_owner = $1 AND id IN (SELECT value FROM json_each($2))

-- --- jobs and metrics --------------------------------------------------------------------

-- name: purge_finished
DELETE FROM queues WHERE id IN (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < $1
     AND @NOT_NEEDED@
   LIMIT $2)

-- name: purge_idle_flows
DELETE FROM flows WHERE (owner_id, key) IN (
  SELECT owner_id, key FROM flows WHERE next_start_at < $1 LIMIT $2)

-- --- destinations' circuits (SPEC §18.1) -------------------------------------------------

-- Rows (id, owner, sealed address, now): a row for each destination that just failed.
-- name: add_destinations
INSERT INTO destinations (id, owner_id, address, updated_at)
SELECT column1, column2, column3, column4 FROM (VALUES {values}) WHERE true
ON CONFLICT (id) DO NOTHING

-- Rows (id, failures, error, now, threshold, open ms, cap ms, probe): a closed circuit opens
-- at `threshold` failures in a row; a failed probe keeps it open twice as long, to `cap`.
-- name: circuit_failed
WITH v(id, n, error, now, threshold, open_ms, cap, probe) AS (VALUES {values})
UPDATE destinations
   SET failures = destinations.failures + v.n, last_error = v.error, updated_at = v.now,
       open_until = CASE
         WHEN destinations.open_until = 0 AND destinations.failures + v.n >= v.threshold
           THEN v.now + v.open_ms
         WHEN destinations.open_until > 0 AND v.probe = 1
           THEN v.now + min(destinations.open_ms * 2, v.cap)
         ELSE destinations.open_until END,
       open_ms = CASE
         WHEN destinations.open_until = 0 AND destinations.failures + v.n >= v.threshold
           THEN v.open_ms
         WHEN destinations.open_until > 0 AND v.probe = 1
           THEN min(destinations.open_ms * 2, v.cap)
         ELSE destinations.open_ms END,
       probe_until = iif(v.probe = 1, 0, destinations.probe_until)
  FROM v WHERE destinations.id = v.id

-- Rows (id, now): an answer closes the circuit; the ids closed (or reset) come back.
-- name: circuit_answered
WITH v(id, now) AS (VALUES {values})
UPDATE destinations SET failures = 0, open_until = 0, open_ms = 0, probe_until = 0,
                        updated_at = v.now
  FROM v WHERE destinations.id = v.id
               AND (destinations.failures > 0 OR destinations.open_until > 0)
RETURNING destinations.id

-- Closed circuits unchanged since before $1: a destination that answers (or is gone).
-- name: purge_idle_destinations
DELETE FROM destinations WHERE id IN (
  SELECT id FROM destinations WHERE open_until = 0 AND updated_at < $1 LIMIT $2)

-- --- workflows (SPEC §17) -------------------------------------------------------------------

-- The owner's tasks ($2, a JSON list) a registration depends on, marked as having dependents
-- so their responses are kept for placeholders.
-- name: mark_parents
UPDATE queues SET has_dependents = 1
 WHERE owner_id = $1 AND id IN (SELECT value FROM json_each($2))
RETURNING id, state

-- Rows (id, owner, state, created at, due, retry limit, request, metadata, flow key,
-- parallelism, rate, batch, pending, release delay, status, end, callback due, dependents,
-- ref, labels, method, target, destination).
-- name: insert_linked_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate, batch_id,
                    pending_deps, release_delay, status_code, estimate_end_at, callback_due,
                    has_dependents, ref, labels, method, target, destination)
SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9,
       column10, column11, column12, column13, column14, column15, column16, column17, column18,
       column19, column20, column21, column22, column23
  FROM (VALUES {values})
RETURNING @COLUMNS@

-- Rows (task, the task it depends on, the name its placeholders use, requireSuccess).
-- name: insert_dependencies
INSERT INTO dependencies (queue_id, depends_on, name, require_success)
SELECT column1, column2, column3, column4 FROM (VALUES {values})

-- The dependents that required the tasks $1 (a JSON list) to succeed, which failed or went:
-- they end ERROR 424 (Failed Dependency), their failureCallback to be queued.
-- name: fail_dependents
UPDATE queues SET state = 'ERROR', status_code = 424, estimate_end_at = $2, paused_at = NULL,
                  callback_due = 1, version = version + 1
 WHERE state IN ('WAITING', 'PAUSED') AND pending_deps > 0
   AND id IN (SELECT queue_id FROM dependencies
               WHERE require_success = 1 AND depends_on IN (SELECT value FROM json_each($1)))
RETURNING id

-- The other dependents of the tasks $1 (a JSON list), which finished: one dependency fewer to
-- wait for; one waiting for none is due `release_delay` from now $2, or at its executeAt.
-- name: release_dependents
WITH d(queue_id, n) AS (
  SELECT queue_id, count(*) FROM dependencies
   WHERE depends_on IN (SELECT value FROM json_each($1)) GROUP BY queue_id)
UPDATE queues SET pending_deps = pending_deps - d.n,
                  state = iif(state = 'WAITING' AND pending_deps = d.n, 'RUNNING', state),
                  estimate_execution_at = iif(pending_deps = d.n,
                                              max(estimate_execution_at, $2 + release_delay),
                                              estimate_execution_at),
                  version = version + 1
  FROM d WHERE queues.id = d.queue_id AND state IN ('WAITING', 'PAUSED') AND pending_deps > 0

-- Rows (id): whose callback_due this transaction clears (once, whichever process sweeps).
-- name: clear_callback_due
WITH v(id) AS (VALUES {values})
UPDATE queues SET callback_due = 0 FROM v WHERE queues.id = v.id AND callback_due = 1
RETURNING queues.id

