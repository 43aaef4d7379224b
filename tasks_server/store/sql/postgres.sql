-- PostgreSQL's statements (see store/queries.py). Every node writes at once, so what must be
-- exact takes row locks: a registration locks its owner row (the limit), a change or delete
-- its task row (an outcome, written by the task's holder alone, takes it last). Claims skip
-- rows another node is claiming (`FOR UPDATE SKIP LOCKED`) and compare leases with the
-- database clock that `now` reads. A table of rows arrives as one array per column
-- (`unnest`), whose rows look the tasks up by index. The purges
-- pick their batch once (MATERIALIZED): `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`
-- may run its subquery more than once, and then delete more than n rows.

-- --- the driver's own --------------------------------------------------------------------

-- name: ping
SELECT 1

-- name: now
SELECT tasks_now_ms()

-- name: try_leader
SELECT pg_try_advisory_lock($1)

-- name: notify
SELECT pg_notify($1, $2)

-- --- meta --------------------------------------------------------------------------------

-- name: has_data
SELECT EXISTS (SELECT 1 FROM owners) OR EXISTS (SELECT 1 FROM queues)

-- Locked, so nodes starting together record one value (the first to commit wins).
-- name: lock_meta
LOCK TABLE meta IN EXCLUSIVE MODE

-- name: select_meta
SELECT value FROM meta WHERE name = $1

-- name: insert_meta
INSERT INTO meta (name, value) VALUES ($1, $2)

-- Any one sealed request: it opens with the right key only.
-- name: sealed_sample
SELECT id, request FROM queues LIMIT 1

-- name: take_plain_keys_mark
DELETE FROM meta WHERE name = 'plain_keys'

-- VACUUM reclaims the old row versions; there is nothing to turn on.
-- name: erase_freed
SELECT 1

-- name: select_plain_idempotency
SELECT owner_id, key FROM idempotency

-- name: digest_idempotency
UPDATE idempotency i SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE i.owner_id = d.owner_id AND i.key = d.key

-- name: select_plain_flows
SELECT owner_id, key FROM flows

-- name: digest_flows
UPDATE flows f SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE f.owner_id = d.owner_id AND f.key = d.key

-- name: select_plain_queue_flows
SELECT DISTINCT owner_id, flow_key FROM queues WHERE flow_key IS NOT NULL

-- name: digest_queue_flows
UPDATE queues q SET flow_key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE q.owner_id = d.owner_id AND q.flow_key = d.key

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
SELECT signing_secret FROM owners WHERE id = $1 AND name = $2 FOR UPDATE

-- name: rotate_signing
UPDATE owners SET previous_signing_secret = $1, previous_signing_until = $2, signing_secret = $3
 WHERE id = $4

-- name: select_owner
SELECT id, name, created_at, active_tasks FROM owners WHERE id = $1 AND name = $2

-- name: lock_owner_active
SELECT active_tasks FROM owners WHERE id = $1 AND name = $2 FOR UPDATE

-- name: delete_owner
DELETE FROM owners WHERE id = $1

-- name: lock_owner
SELECT 1 FROM owners WHERE id = $1 FOR UPDATE

-- name: owner_has_room
SELECT active_tasks < $2 FROM owners WHERE id = $1 FOR UPDATE

-- --- idempotent registration -------------------------------------------------------------

-- name: purge_idempotency
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM idempotency WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM idempotency USING doomed WHERE idempotency.ctid = doomed.ctid

-- name: select_idempotency
SELECT body_digest, queue_id FROM idempotency WHERE owner_id = $1 AND key = $2 AND expires_at > $3

-- name: upsert_idempotency
INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner_id, key) DO UPDATE
   SET body_digest = excluded.body_digest, queue_id = excluded.queue_id,
       expires_at = excluded.expires_at

-- --- tasks -------------------------------------------------------------------------------

-- $8 the pre-claiming holder, $9 how long its lease lasts, from the database clock; inserted
-- only while the owner ($2) holds fewer than $13 active tasks. One statement, so the owner's
-- row stays locked only while it runs: registrations of one owner take turns on it, and
-- a lock held across round trips would make them queue.
-- name: insert_queue
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate)
SELECT $1, owners.id, 'RUNNING', $3, $4, $5, $6, $7, $8,
       CASE WHEN $8::text IS NULL THEN NULL ELSE tasks_now_ms() + $9::bigint END,
       $10, $11, $12
  FROM owners WHERE owners.id = $2 AND owners.active_tasks < $13
   FOR UPDATE OF owners
RETURNING @COLUMNS@

-- name: owner_exists
SELECT 1 FROM owners WHERE id = $1

-- name: insert_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate)
SELECT id, owner_id, 'RUNNING', created_at, due, retry_limit, request, metadata, flow_key,
       flow_parallelism, flow_rate
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
              $7::bytea[], $8::text[], $9::integer[], $10::double precision[])
    AS tasks (id, owner_id, created_at, due, retry_limit, request, metadata, flow_key,
              flow_parallelism, flow_rate)

-- name: select_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2

-- name: lock_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2 FOR UPDATE OF queues

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

-- Counted after lock_owner, in a statement of its own: a subquery of the locking statement
-- would read the snapshot from before the wait for the lock, and miss the schedules the
-- previous holder of the lock added.
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
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE id = $1 AND owner_id = $2 FOR UPDATE

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
   FOR UPDATE

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
-- expired, and never to a task whose attempt this holder still runs; rows another node is
-- claiming right now are skipped, not waited for.
-- name: claim
WITH picked AS (
  SELECT q.id FROM queues q
   WHERE q.state = 'RUNNING' AND q.estimate_execution_at <= $3 AND q.flow_key IS NULL
     AND (q.lease_owner IS NULL OR q.lease_until < $2)
     AND NOT EXISTS (SELECT 1 FROM attempts a
                      WHERE a.queue_id = q.id AND a.finished_at = 0 AND a.holder = $1)
   ORDER BY q.estimate_execution_at LIMIT $5
   FOR UPDATE OF q SKIP LOCKED)
UPDATE queues SET lease_owner = $1, lease_until = $4 FROM picked WHERE queues.id = picked.id
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

-- The key's row is its lock: claims of one key, on any node, take turns. A key another claim
-- holds is skipped (lock_flow finds no row), as is one the retention purge deleted between
-- the two statements: the next claim takes it.
-- name: flow_row
INSERT INTO flows (owner_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING

-- name: lock_flow
SELECT next_start_at FROM flows WHERE owner_id = $1 AND key = $2 FOR UPDATE SKIP LOCKED

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
   FOR UPDATE OF queues SKIP LOCKED

-- name: lease
UPDATE queues SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3::text[])

-- name: flow_advance
UPDATE flows SET next_start_at = $1 WHERE owner_id = $2 AND key = $3

-- Attempts left open by a holder whose lease expired (a dead process) end when claimed again.
-- name: interrupt_claimed
UPDATE attempts SET finished_at = $2, outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder <> $1 AND queue_id = ANY($3::text[])

-- Rows (id, holder, version): the tasks still held as they were claimed count one attempt more.
-- name: count_attempts
UPDATE queues q SET attempts = q.attempts + 1
  FROM unnest($1::text[], $2::text[], $3::integer[]) AS v (id, holder, version)
 WHERE q.id = v.id AND q.lease_owner = v.holder AND q.version = v.version
   AND q.state = 'RUNNING'
RETURNING q.id, q.attempts, q.estimate_execution_at

-- Rows (id, attempt, due at, holder, started at).
-- name: open_attempts
INSERT INTO attempts (queue_id, attempt, due_at, holder, started_at)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::bigint[])

-- Rows (id, holder, version, state, status, response, now, retry at): an ending outcome
-- (`state` set) finishes the task, otherwise it retries at `retry at`. An outcome applies only
-- for the version it was run with, by the lease's holder.
-- name: record_outcomes
UPDATE queues q SET state = coalesce(v.state, q.state), status_code = v.status_code,
       response = v.response,
       estimate_end_at = CASE WHEN v.state IS NULL THEN q.estimate_end_at ELSE v.now END,
       estimate_execution_at = coalesce(v.retry_at, q.estimate_execution_at),
       retry_count = q.retry_count + CASE WHEN v.state IS NULL THEN 1 ELSE 0 END,
       lease_owner = NULL, lease_until = NULL, version = q.version + 1
  FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::integer[], $6::bytea[],
              $7::bigint[], $8::bigint[])
    AS v (id, holder, version, state, status_code, response, now, retry_at)
 WHERE q.id = v.id AND q.lease_owner = v.holder AND q.version = v.version
RETURNING q.id

-- Rows (id, attempt, finished at, status, outcome, error, response).
-- name: close_attempts
UPDATE attempts a SET finished_at = v.now, status_code = v.status_code, outcome = v.outcome,
       error = v.error, response = v.response
  FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::integer[], $5::text[], $6::bytea[],
              $7::bytea[])
    AS v (id, attempt, now, status_code, outcome, error, response)
 WHERE a.queue_id = v.id AND a.attempt = v.attempt AND a.finished_at = 0

-- Rows (id, owner, created at, due, retry limit, request, metadata, the task it reports on).
-- name: insert_callbacks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of)
SELECT id, owner_id, 'RUNNING', created_at, due, retry_limit, request, metadata, callback_of
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
              $7::bytea[], $8::text[])
    AS v (id, owner_id, created_at, due, retry_limit, request, metadata, callback_of)

-- Rows (callback id, task id).
-- name: set_callback_ids
UPDATE queues q SET callback_id = v.callback_id
  FROM unnest($1::text[], $2::text[]) AS v (callback_id, id) WHERE q.id = v.id

-- Rows (id, the last attempt number to delete).
-- name: prune_attempts
DELETE FROM attempts a USING unnest($1::text[], $2::integer[]) AS v (id, upto)
 WHERE a.queue_id = v.id AND a.attempt <= v.upto

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

-- A row another transaction is writing now (the task's start or outcome) is skipped, not
-- waited for: its lease is renewed next time, long before it ends. Waiting would hold the
-- locks already taken on thousands of rows, and the starts and outcomes of those would wait.
-- name: renew_leases
WITH renewed AS MATERIALIZED (
  SELECT id FROM queues WHERE lease_owner = $1 AND id = ANY($2::text[])
     FOR UPDATE SKIP LOCKED)
UPDATE queues SET lease_until = $3 FROM renewed WHERE queues.id = renewed.id

-- name: release_leases_of
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1

-- name: interrupt_open_of
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED' WHERE finished_at = 0 AND holder = $2

-- name: release_all_leases
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL

-- --- jobs and metrics --------------------------------------------------------------------

-- name: purge_finished
WITH doomed AS MATERIALIZED (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < $1
   LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM queues USING doomed WHERE queues.id = doomed.id

-- name: purge_idle_flows
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM flows WHERE next_start_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM flows USING doomed WHERE flows.ctid = doomed.ctid

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
