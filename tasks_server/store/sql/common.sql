-- The statements both engines run as written (see store/queries.py); each engine's own file
-- holds the rest, under the same names.

-- --- the driver's own --------------------------------------------------------------------

-- name: ping
SELECT 1

-- --- meta --------------------------------------------------------------------------------

-- name: has_data
SELECT EXISTS (SELECT 1 FROM owners) OR EXISTS (SELECT 1 FROM queues)

-- name: select_meta
SELECT value FROM meta WHERE name = $1

-- name: insert_meta
INSERT INTO meta (name, value) VALUES ($1, $2)

-- Any one sealed request: it opens with the right key only.
-- name: sealed_sample
SELECT id, request FROM queues LIMIT 1

-- name: take_plain_keys_mark
DELETE FROM meta WHERE name = 'plain_keys'

-- name: select_plain_idempotency
SELECT owner_id, key FROM idempotency

-- name: select_plain_flows
SELECT owner_id, key FROM flows

-- name: select_plain_queue_flows
SELECT DISTINCT owner_id, flow_key FROM queues WHERE flow_key IS NOT NULL

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

-- name: rotate_signing
UPDATE owners SET previous_signing_secret = $1, previous_signing_until = $2, signing_secret = $3
 WHERE id = $4

-- name: select_owner
SELECT id, name, created_at, active_tasks FROM owners WHERE id = $1 AND name = $2

-- name: delete_owner
DELETE FROM owners WHERE id = $1

-- --- idempotent registration -------------------------------------------------------------

-- name: select_idempotency
SELECT body_digest, queue_id FROM idempotency WHERE owner_id = $1 AND key = $2 AND expires_at > $3

-- name: upsert_idempotency
INSERT INTO idempotency (owner_id, key, body_digest, queue_id, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner_id, key) DO UPDATE
   SET body_digest = excluded.body_digest, queue_id = excluded.queue_id,
       expires_at = excluded.expires_at

-- --- tasks -------------------------------------------------------------------------------

-- name: owner_exists
SELECT 1 FROM owners WHERE id = $1

-- name: select_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2

-- name: select_by_id
SELECT @COLUMNS@ FROM queues WHERE id = $1

-- name: update_queue
UPDATE queues SET {set}, version = version + 1 WHERE id = {id} RETURNING @COLUMNS@

-- name: delete_queue
DELETE FROM queues WHERE id = $1 AND owner_id = $2 RETURNING id, state, has_dependents

-- name: list_tasks
SELECT @SUMMARY_COLUMNS@ FROM queues WHERE owner_id = $1{where}
 ORDER BY {order} LIMIT {limit} OFFSET {offset}

-- name: select_ids_in_state
SELECT id FROM queues WHERE owner_id = $1 AND state = $2 ORDER BY created_at, id LIMIT $3

-- name: count_in_state
SELECT count(*) FROM queues WHERE owner_id = $1 AND state = $2

-- name: select_attempts
SELECT attempt, due_at, started_at, finished_at, status_code, outcome, error, response, sent
  FROM attempts WHERE queue_id = $1 ORDER BY attempt LIMIT $2 OFFSET $3

-- --- schedules ---------------------------------------------------------------------------

-- Counted after lock_owner, in a statement of its own: a subquery of the locking statement
-- would read the snapshot from before the wait for the lock, and miss the schedules the
-- previous holder of the lock added.
-- name: count_owner_schedules
SELECT count(*) FROM schedules WHERE owner_id = $1

-- name: insert_schedule
INSERT INTO schedules (id, owner_id, state, cron, timezone, created_at, next_run_at, request,
                       metadata, labels)
VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $8, $9)
RETURNING @SCHEDULE_COLUMNS@

-- name: select_schedule
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

-- name: insert_fired
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, schedule_id, scheduled_for, flow_key,
                    flow_parallelism, flow_rate, labels, method, target, destination)
VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
RETURNING @COLUMNS@

-- name: advance_schedule
UPDATE schedules SET next_run_at = $1 WHERE id = $2

-- name: fired
UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_queue_id = $3 WHERE id = $4

-- name: count_active_schedules
SELECT count(*) FROM schedules WHERE state = 'ACTIVE'

-- --- the scheduler -----------------------------------------------------------------------

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

-- name: flow_busy
SELECT count(*) FROM queues
 WHERE owner_id = $1 AND flow_key = $2 AND state = 'RUNNING' AND lease_until >= $3

-- name: flow_advance
UPDATE flows SET next_start_at = $1 WHERE owner_id = $2 AND key = $3

-- A holder has at most one attempt of a task open: its start time tells it from older ones.
-- name: abort_open
UPDATE attempts SET finished_at = $1, outcome = 'ABORTED'
 WHERE queue_id = $2 AND holder = $3 AND started_at = $4 AND finished_at = 0
RETURNING @CLOSED@

-- name: release_lease
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2

-- name: interrupt_open_of_task
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED'
 WHERE queue_id = $2 AND holder = $3 AND finished_at = 0
RETURNING @CLOSED@

-- name: leased_versions
SELECT id, state, version FROM queues WHERE lease_owner = $1

-- name: release_leases_of
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1

-- name: interrupt_open_of
UPDATE attempts SET finished_at = $1, outcome = 'INTERRUPTED' WHERE finished_at = 0 AND holder = $2
RETURNING @CLOSED@

-- name: release_all_leases
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL

-- --- jobs and metrics --------------------------------------------------------------------

-- name: count_by_state
SELECT state, count(*) FROM queues GROUP BY state

-- name: overdue
SELECT count(*), min(estimate_execution_at) FROM queues
 WHERE state = 'RUNNING' AND estimate_execution_at < $1
   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.queue_id = queues.id AND a.finished_at = 0)

-- name: count_active_by_owner
SELECT owners.id, owners.active_tasks,
       (SELECT count(*) FROM queues
         WHERE owner_id = owners.id AND state IN ('RUNNING', 'PAUSED'))
  FROM owners

-- --- workflows (SPEC §17) -------------------------------------------------------------------

-- name: dependency_results
SELECT d.name, d.depends_on, q.status_code, q.response
  FROM dependencies d LEFT JOIN queues q ON q.id = d.depends_on
 WHERE d.queue_id = $1

-- name: dependencies_of
SELECT depends_on, name, require_success FROM dependencies WHERE queue_id = $1
 ORDER BY depends_on

-- name: dependents_of
SELECT queue_id FROM dependencies WHERE depends_on = $1 ORDER BY queue_id

-- name: batch_rows
SELECT @COLUMNS@ FROM queues WHERE owner_id = $1 AND batch_id = $2 ORDER BY id

-- name: batch_tasks
SELECT @SUMMARY_COLUMNS@ FROM queues WHERE owner_id = $1 AND batch_id = $2 ORDER BY id

-- name: batch_edges
SELECT d.depends_on, d.queue_id, d.require_success
  FROM dependencies d JOIN queues q ON q.id = d.queue_id
 WHERE q.owner_id = $1 AND q.batch_id = $2
 ORDER BY d.queue_id, d.depends_on

-- Tasks a failed dependency ended, whose failureCallback is still to be queued.
-- name: callbacks_due
SELECT @COLUMNS@ FROM queues WHERE callback_due = 1 ORDER BY id LIMIT $1

-- --- import from the original (SPEC §19.1) -----------------------------------------------

-- An imported owner has no SHA-256 digest until its key's first use (an empty one matches
-- no key); its id or name already taken: nothing.
-- name: import_owner
INSERT INTO owners (id, name, key_digest, original_key_hash, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING RETURNING id

-- name: select_owner_name
SELECT name FROM owners WHERE id = $1

-- name: import_task
INSERT INTO queues (id, owner_id, state, created_at, status_code, estimate_execution_at,
                    estimate_end_at, paused_at, retry_count, retry_limit, attempts, request,
                    metadata, response, labels, method, target, destination)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT DO NOTHING RETURNING id

-- name: select_original_key
SELECT original_key_hash FROM owners WHERE id = $1

-- The hash is compared so that a key rotated meanwhile is never overwritten.
-- name: adopt_original_key
UPDATE owners SET key_digest = $1, original_key_hash = NULL
 WHERE id = $2 AND original_key_hash = $3

-- --- destinations' circuits (SPEC §18.1) -------------------------------------------------

-- The circuits not closed: open until `open_until`, or half-open once it passed.
-- name: circuits
SELECT id, open_until FROM destinations WHERE open_until > 0

-- name: count_open_circuits
SELECT count(*) FROM destinations WHERE open_until > 0

-- $1 id, $2 now, $3 the probe's lease: the one attempt of a half-open circuit.
-- name: take_probe
UPDATE destinations SET probe_until = $3
 WHERE id = $1 AND open_until > 0 AND open_until <= $2 AND probe_until <= $2
RETURNING id

-- name: select_circuit
SELECT open_until, probe_until FROM destinations WHERE id = $1

-- A task waits for its circuit leased to it, its due time (its place) kept.
-- name: hold_for_circuit
UPDATE queues SET lease_owner = $3, lease_until = $4 WHERE id = $1 AND lease_owner = $2

-- name: release_circuit_holds
UPDATE queues SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1

-- name: list_destinations
SELECT id, address, failures, open_until, probe_until, last_error, updated_at
  FROM destinations WHERE owner_id = $1 ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3

-- name: reset_destination
UPDATE destinations SET failures = 0, open_until = 0, open_ms = 0, probe_until = 0,
                        updated_at = $3
 WHERE id = $1 AND owner_id = $2
RETURNING id, address, failures, open_until, probe_until, last_error, updated_at

-- --- schedules' missed runs and overlap (SPEC §18.3) -------------------------------------

-- The task of the schedule's last fire, when it has not finished.
-- name: last_fire_unfinished
SELECT 1 FROM schedules s JOIN queues q ON q.id = s.last_queue_id
 WHERE s.id = $1 AND q.state NOT IN ('SUCCESS', 'ERROR', 'REVOKED')

-- --- stats (SPEC §19.4): running aggregates, counted by the outcome write ---------------

-- name: stats_attempts
SELECT minute, key, sum(n) FROM stats_counts
 WHERE owner_id = $1 AND kind = 'outcome' AND minute >= $2
 GROUP BY minute, key ORDER BY minute, key

-- name: stats_lateness
SELECT key, sum(n) FROM stats_counts
 WHERE owner_id = $1 AND kind = 'lateness' AND minute >= $2 GROUP BY key

-- name: stats_failures
SELECT key, sum(n) AS total FROM stats_counts
 WHERE owner_id = $1 AND kind = 'failure' AND minute >= $2
 GROUP BY key ORDER BY total DESC, key LIMIT $3

-- name: stats_states
SELECT state, count(*) FROM queues WHERE owner_id = $1 GROUP BY state

-- name: purge_stats
DELETE FROM stats_counts WHERE minute < $1

-- --- lists (SPEC §19.4) -------------------------------------------------------------------

-- How many of the owner's tasks carry a label: a filter of several is driven by the rarest.
-- name: count_label
SELECT count(*) FROM queue_labels WHERE owner_id = $1 AND key = $2 AND value = $3

-- The tasks carrying one label ($2 key, $3 value), the other filters after: the label's rows
-- lead the join (SQLite keeps a CROSS JOIN's order), so a rare label reads only its tasks.
-- name: list_tasks_by_label
SELECT @SUMMARY_COLUMNS@ FROM queue_labels l CROSS JOIN queues
 WHERE l.owner_id = $1 AND l.key = $2 AND l.value = $3 AND queues.id = l.queue_id
   AND queues.owner_id = $1{where}
 ORDER BY {order} LIMIT {limit} OFFSET {offset}
