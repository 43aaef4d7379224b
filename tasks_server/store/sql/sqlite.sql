-- SQLite's statements (see store/queries.py). SQLite has one writer: a statement that locks
-- on PostgreSQL only has to read here. `{values}` is a table of rows, bound as a VALUES list
-- (columns column1, column2…); an array is a JSON array (`json_each`).

-- --- the driver's own --------------------------------------------------------------------

-- name: ping
SELECT 1

-- /health's write: one row rewritten, so each probe appends to the WAL as a registration does.
-- name: probe_write
INSERT OR REPLACE INTO meta (name, value) VALUES ('write_probe', x'')

-- --- meta --------------------------------------------------------------------------------

-- name: has_data
SELECT EXISTS (SELECT 1 FROM owners) OR EXISTS (SELECT 1 FROM queues)

-- The writer is alone: nothing to lock.
-- name: lock_meta
SELECT 1

-- name: select_meta
SELECT value FROM meta WHERE name = $1

-- name: insert_meta
INSERT INTO meta (name, value) VALUES ($1, $2)

-- Any one sealed request: it opens with the right key only.
-- name: sealed_sample
SELECT id, request FROM queues LIMIT 1

-- name: take_plain_keys_mark
DELETE FROM meta WHERE name = 'plain_keys'

-- The cells the digests free are zeroed, so plain keys do not linger in the file's free
-- space (for the rest of the writer connection's life).
-- name: erase_freed
PRAGMA secure_delete = ON

-- name: select_plain_idempotency
SELECT owner_id, key FROM idempotency

-- name: digest_idempotency
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE idempotency SET key = d.digest
  FROM d WHERE idempotency.owner_id = d.owner_id AND idempotency.key = d.key

-- name: select_plain_flows
SELECT owner_id, key FROM flows

-- name: digest_flows
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE flows SET key = d.digest FROM d WHERE flows.owner_id = d.owner_id AND flows.key = d.key

-- name: select_plain_queue_flows
SELECT DISTINCT owner_id, flow_key FROM queues WHERE flow_key IS NOT NULL

-- name: digest_queue_flows
WITH d(owner_id, key, digest) AS (VALUES {values})
UPDATE queues SET flow_key = d.digest
  FROM d WHERE queues.owner_id = d.owner_id AND queues.flow_key = d.key

-- --- owners ------------------------------------------------------------------------------

-- name: insert_owner
INSERT INTO owners (id, name, key_digest, signing_secret, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO NOTHING RETURNING id

-- name: select_key_digests
SELECT key_digest, previous_key_digest, previous_key_until FROM owners WHERE id = $1

-- name: rotate_key
UPDATE owners SET previous_key_digest = key_digest, previous_key_until = $1, key_digest = $2
 WHERE id = $3 AND name = $4 RETURNING id

-- name: set_missing_signing
UPDATE owners SET signing_secret = $1 WHERE id = $2 AND signing_secret IS NULL

-- name: select_signing
SELECT signing_secret, previous_signing_secret, previous_signing_until FROM owners WHERE id = $1

-- name: lock_signing_by_name
SELECT signing_secret FROM owners WHERE id = $1 AND name = $2

-- name: rotate_signing
UPDATE owners SET previous_signing_secret = $1, previous_signing_until = $2, signing_secret = $3
 WHERE id = $4

-- name: select_owner
SELECT id, name, created_at, active_tasks FROM owners WHERE id = $1 AND name = $2

-- name: lock_owner_active
SELECT active_tasks FROM owners WHERE id = $1 AND name = $2

-- name: delete_owner
DELETE FROM owners WHERE id = $1

-- name: lock_owner
SELECT 1 FROM owners WHERE id = $1

-- name: owner_has_room
SELECT active_tasks < $2 FROM owners WHERE id = $1

-- --- idempotent registration -------------------------------------------------------------

-- name: purge_idempotency
DELETE FROM idempotency
 WHERE rowid IN (SELECT rowid FROM idempotency WHERE expires_at <= $1 LIMIT $2)

-- name: select_idempotency
SELECT body_digest, queue_id FROM idempotency WHERE owner_id = $1 AND key = $2 AND expires_at > $3

-- name: upsert_idempotency
INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner_id, key) DO UPDATE
   SET body_digest = excluded.body_digest, queue_id = excluded.queue_id,
       expires_at = excluded.expires_at

-- --- tasks -------------------------------------------------------------------------------

-- $8 the pre-claiming holder, $9 how long its lease lasts from $3 (now); inserted only while
-- the owner ($2) holds fewer than $13 active tasks.
-- name: insert_queue
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate)
SELECT $1, owners.id, 'RUNNING', $3, $4, $5, $6, $7, $8,
       CASE WHEN $8 IS NULL THEN NULL ELSE $3 + $9 END,
       $10, $11, $12
  FROM owners WHERE owners.id = $2 AND owners.active_tasks < $13
RETURNING @COLUMNS@

-- name: owner_exists
SELECT 1 FROM owners WHERE id = $1

-- name: insert_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate)
SELECT column1, column2, 'RUNNING', column3, column4, column5, column6, column7, column8,
       column9, column10
  FROM (VALUES {values})

-- name: select_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2

-- name: lock_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2

-- name: select_by_id
SELECT @COLUMNS@ FROM queues WHERE id = $1

-- name: update_queue
UPDATE queues SET {set}, version = version + 1 WHERE id = {id} RETURNING @COLUMNS@

-- name: delete_queue
DELETE FROM queues WHERE id = $1 AND owner_id = $2 RETURNING id

-- name: list_tasks
SELECT @SUMMARY_COLUMNS@ FROM queues WHERE owner_id = $1{where}
 ORDER BY {order} LIMIT {limit} OFFSET {offset}

-- name: select_ids_in_state
SELECT id FROM queues WHERE owner_id = $1 AND state = $2 ORDER BY created_at, id LIMIT $3

-- name: count_in_state
SELECT count(*) FROM queues WHERE owner_id = $1 AND state = $2

-- name: select_attempts
SELECT attempt, due_at, started_at, finished_at, status_code, outcome, error, response
  FROM attempts WHERE queue_id = $1 ORDER BY attempt LIMIT $2 OFFSET $3

-- --- schedules ---------------------------------------------------------------------------

-- name: count_owner_schedules
SELECT count(*) FROM schedules WHERE owner_id = $1

-- name: insert_schedule
INSERT INTO schedules (id, owner_id, state, cron, timezone, created_at, next_run_at, request,
                       metadata)
VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $8)
RETURNING @SCHEDULE_COLUMNS@

-- name: select_schedule
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE id = $1 AND owner_id = $2

-- name: lock_schedule
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE id = $1 AND owner_id = $2

-- name: list_schedules
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE owner_id = $1 ORDER BY created_at, id
 LIMIT $2 OFFSET $3

-- name: update_schedule
UPDATE schedules SET {set}, version = version + 1 WHERE id = {id} RETURNING @SCHEDULE_COLUMNS@

-- name: delete_schedule
DELETE FROM schedules WHERE id = $1 AND owner_id = $2 RETURNING id

-- name: due_schedules
SELECT @SCHEDULE_COLUMNS@ FROM schedules
 WHERE state = 'ACTIVE' AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2

-- name: lock_current_schedule
SELECT 1 FROM schedules WHERE id = $1 AND state = 'ACTIVE' AND version = $2 AND next_run_at = $3

-- name: insert_fired
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, schedule_id, scheduled_for, flow_key,
                    flow_parallelism, flow_rate)
VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
RETURNING @COLUMNS@

-- name: advance_schedule
UPDATE schedules SET next_run_at = $1 WHERE id = $2

-- name: fired
UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_queue_id = $3 WHERE id = $4

-- name: count_active_schedules
SELECT count(*) FROM schedules WHERE state = 'ACTIVE'

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

-- Flow keys (owner, key) with a waiting task their limits could lease now, earliest first
-- ($1 now, $2 horizon, $3 limit).
-- name: flow_keys_ready
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

-- name: flow_row
INSERT INTO flows (owner_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING

-- name: lock_flow
SELECT next_start_at FROM flows WHERE owner_id = $1 AND key = $2

-- name: flow_busy
SELECT count(*) FROM queues
 WHERE owner_id = $1 AND flow_key = $2 AND state = 'RUNNING' AND lease_until >= $3

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

-- name: flow_advance
UPDATE flows SET next_start_at = $1 WHERE owner_id = $2 AND key = $3

-- Attempts left open by a holder whose lease expired (a dead process) end when claimed again.
-- name: interrupt_claimed
UPDATE attempts SET finished_at = $2, outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder != $1 AND queue_id IN (SELECT value FROM json_each($3))

-- Rows (id, holder, version): the tasks still held as they were claimed count one attempt more.
-- name: count_attempts
WITH v(id, holder, version) AS (VALUES {values})
UPDATE queues SET attempts = queues.attempts + 1
  FROM v WHERE queues.id = v.id AND queues.lease_owner = v.holder
               AND queues.version = v.version AND queues.state = 'RUNNING'
RETURNING queues.id, queues.attempts, queues.estimate_execution_at

-- Rows (id, attempt, due at, holder, started at).
-- name: open_attempts
INSERT INTO attempts (queue_id, attempt, due_at, holder, started_at) VALUES {values}

-- Rows (id, holder, version, state, status, response, now, retry at): an ending outcome
-- (`state` set) finishes the task, otherwise it retries at `retry at`. An outcome applies only
-- for the version it was run with, by the lease's holder.
-- name: record_outcomes
WITH v(id, holder, version, state, status_code, response, now, retry_at) AS (VALUES {values})
UPDATE queues SET state = coalesce(v.state, queues.state), status_code = v.status_code,
                  response = v.response,
                  estimate_end_at = iif(v.state IS NULL, queues.estimate_end_at, v.now),
                  estimate_execution_at = iif(v.state IS NULL, v.retry_at,
                                              queues.estimate_execution_at),
                  retry_count = queues.retry_count + (v.state IS NULL),
                  lease_owner = NULL, lease_until = NULL, version = queues.version + 1
  FROM v WHERE queues.id = v.id AND queues.lease_owner = v.holder AND queues.version = v.version
RETURNING queues.id

-- Rows (id, attempt, finished at, status, outcome, error, response).
-- name: close_attempts
WITH v(id, attempt, now, status_code, outcome, error, response) AS (VALUES {values})
UPDATE attempts SET finished_at = v.now, status_code = v.status_code, outcome = v.outcome,
                    error = v.error, response = v.response
  FROM v WHERE attempts.queue_id = v.id AND attempts.attempt = v.attempt
               AND attempts.finished_at = 0

-- Rows (id, owner, created at, due, retry limit, request, metadata, the task it reports on).
-- name: insert_callbacks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of)
SELECT column1, column2, 'RUNNING', column3, column4, column5, column6, column7, column8
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

-- name: abort_open
UPDATE attempts SET finished_at = $1, outcome = 'ABORTED'
 WHERE queue_id = $2 AND holder = $3 AND attempt = $4 AND started_at = $5 AND finished_at = 0

-- name: release_lease
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2

-- name: interrupt_open_of_task
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED'
 WHERE queue_id = $2 AND holder = $3 AND finished_at = 0

-- name: leased_versions
SELECT id, state, version FROM queues WHERE lease_owner = $1

-- name: renew_leases
UPDATE queues SET lease_until = $3
 WHERE lease_owner = $1 AND id IN (SELECT value FROM json_each($2))

-- name: release_leases_of
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1

-- name: interrupt_open_of
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED' WHERE finished_at = 0 AND holder = $2

-- name: release_all_leases
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL

-- --- jobs and metrics --------------------------------------------------------------------

-- name: purge_finished
DELETE FROM queues WHERE id IN (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < $1 LIMIT $2)

-- name: purge_idle_flows
DELETE FROM flows WHERE (owner_id, key) IN (
  SELECT owner_id, key FROM flows WHERE next_start_at < $1 LIMIT $2)

-- name: count_by_state
SELECT state, count(*) FROM queues GROUP BY state

-- name: count_overdue
SELECT count(*) FROM queues
 WHERE state = 'RUNNING' AND estimate_execution_at < $1
   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.queue_id = queues.id AND a.finished_at = 0)

-- name: count_active_by_owner
SELECT owners.id, owners.active_tasks,
       (SELECT count(*) FROM queues
         WHERE owner_id = owners.id AND state IN ('RUNNING', 'PAUSED'))
  FROM owners
