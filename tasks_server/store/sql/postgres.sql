-- PostgreSQL's statements (see store/queries.py). Every node writes at once, so what must be
-- exact takes row locks: a registration locks its owner row (the limit), a change or delete
-- its task row (an outcome, written by the task's holder alone, takes it last). Claims skip
-- rows another node is claiming (`FOR UPDATE SKIP LOCKED`) and compare leases with the
-- database clock that `now` reads. A table of rows arrives as one array per column
-- (`unnest`), whose rows look the tasks up by index. The purges
-- pick their batch once (MATERIALIZED): `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`
-- may run its subquery more than once, and then delete more than n rows.

-- --- the driver's own --------------------------------------------------------------------

-- name: now
SELECT tasks_now_ms()

-- name: try_leader
SELECT pg_try_advisory_lock($1)

-- name: notify
SELECT pg_notify($1, $2)

-- A pooled connection's transaction left open by a unit cut short, ended on its release.
-- name: rollback
ROLLBACK

-- --- meta --------------------------------------------------------------------------------

-- Locked, so nodes starting together record one value (the first to commit wins).
-- name: lock_meta
LOCK TABLE meta IN EXCLUSIVE MODE

-- VACUUM reclaims the old row versions; there is nothing to turn on.
-- name: erase_freed
SELECT 1

-- name: digest_idempotency
UPDATE idempotency i SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE i.owner_id = d.owner_id AND i.key = d.key

-- name: digest_flows
UPDATE flows f SET key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE f.owner_id = d.owner_id AND f.key = d.key

-- name: digest_queue_flows
UPDATE queues q SET flow_key = d.digest
  FROM unnest($1::text[], $2::text[], $3::text[]) AS d (owner_id, key, digest)
 WHERE q.owner_id = d.owner_id AND q.flow_key = d.key

-- --- owners ------------------------------------------------------------------------------

-- name: lock_signing_by_name
SELECT signing_secret FROM owners WHERE id = $1 AND name = $2 FOR UPDATE

-- name: lock_owner_active
SELECT active_tasks FROM owners WHERE id = $1 AND name = $2 FOR UPDATE

-- name: lock_owner
SELECT 1 FROM owners WHERE id = $1 FOR UPDATE

-- name: owner_has_room
SELECT active_tasks < $2 FROM owners WHERE id = $1 FOR UPDATE

-- --- idempotent registration -------------------------------------------------------------

-- name: purge_idempotency
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM idempotency WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM idempotency USING doomed WHERE idempotency.ctid = doomed.ctid

-- --- tasks -------------------------------------------------------------------------------

-- $8 the pre-claiming holder, $9 how long its lease lasts, from the database clock; inserted
-- only while the owner ($2) holds fewer than $13 active tasks. One statement, so the owner's
-- row stays locked only while it runs: registrations of one owner take turns on it, and
-- a lock held across round trips would make them queue.
-- name: insert_queue
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, lease_owner, lease_until, flow_key, flow_parallelism,
                    flow_rate, labels, method, target, destination)
SELECT $1, owners.id, 'RUNNING', $3, $4, $5, $6, $7, $8,
       CASE WHEN $8::text IS NULL THEN NULL ELSE tasks_now_ms() + $9::bigint END,
       $10, $11, $12, $14::text, $15::text, $16::text, $17::text
  FROM owners WHERE owners.id = $2 AND owners.active_tasks < $13
   FOR UPDATE OF owners
RETURNING @COLUMNS@

-- name: insert_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate, labels, method,
                    target, destination)
SELECT id, owner_id, 'RUNNING', created_at, due, retry_limit, request, metadata, flow_key,
       flow_parallelism, flow_rate, labels, method, target, destination
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
              $7::bytea[], $8::text[], $9::integer[], $10::double precision[], $11::text[],
              $12::text[], $13::text[], $14::text[])
    AS tasks (id, owner_id, created_at, due, retry_limit, request, metadata, flow_key,
              flow_parallelism, flow_rate, labels, method, target, destination)

-- name: lock_queue
SELECT @COLUMNS@ FROM queues WHERE id = $1 AND owner_id = $2 FOR UPDATE OF queues

-- --- schedules ---------------------------------------------------------------------------

-- name: lock_schedule
SELECT @SCHEDULE_COLUMNS@ FROM schedules WHERE id = $1 AND owner_id = $2 FOR UPDATE

-- name: lock_current_schedule
SELECT 1 FROM schedules WHERE id = $1 AND state = 'ACTIVE' AND version = $2 AND next_run_at = $3
   FOR UPDATE

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

-- name: lock_flow
SELECT next_start_at FROM flows WHERE owner_id = $1 AND key = $2 FOR UPDATE SKIP LOCKED

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

-- Attempts left open by a holder whose lease expired (a dead process) end when claimed again.
-- name: interrupt_claimed
UPDATE attempts SET finished_at = $2, outcome = 'INTERRUPTED'
 WHERE finished_at = 0 AND holder <> $1 AND queue_id = ANY($3::text[])
RETURNING @CLOSED@

-- Rows (id, holder, version, now): the attempts of the tasks still held as they were claimed
-- open, each numbered after the highest its task has (`queues.attempts` is the last one an
-- outcome recorded, or the count an import brought). The task rows are locked, so a change
-- committed meanwhile is seen. The tasks are found by their keys whatever the statistics
-- say (here and in `record_outcomes`): `id = ANY` reads exactly them through the primary
-- key, and the holder is compared with IS NOT DISTINCT FROM, which no index serves. With a
-- plain join, a planner whose statistics were taken while nothing was leased (the partial
-- `queues_lease` then looks empty) merged on that index, reading every row its holder leased
-- per statement; and one that thought `queues` small hashed a scan of the whole table.
-- name: open_attempts
INSERT INTO attempts (queue_id, attempt, holder, due_at, started_at)
SELECT q.id, @NEXT_ATTEMPT@, v.holder, q.estimate_execution_at, v.now
  FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[]) AS v (id, holder, version, now)
  JOIN queues q ON q.id = v.id
 WHERE q.id = ANY($1::text[]) AND q.lease_owner IS NOT DISTINCT FROM v.holder
   AND q.version = v.version AND q.state = 'RUNNING'
   FOR UPDATE OF q
RETURNING queue_id, attempt

-- Rows (id, holder, version, state, status, response, now, retry at, outcome, attempt): an
-- ending outcome (`state` set) finishes the task, otherwise it retries at `retry at`. An
-- outcome applies only for the version it was run with, by the lease's holder.
-- name: record_outcomes
UPDATE queues q SET state = coalesce(v.state, q.state), status_code = v.status_code,
       response = v.response, outcome = v.outcome, attempts = greatest(q.attempts, v.attempt),
       estimate_end_at = CASE WHEN v.state IS NULL THEN q.estimate_end_at ELSE v.now END,
       estimate_execution_at = coalesce(v.retry_at, q.estimate_execution_at),
       retry_count = q.retry_count + CASE WHEN v.state IS NULL THEN 1 ELSE 0 END,
       lease_owner = NULL, lease_until = NULL, version = q.version + 1
  FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::integer[], $6::bytea[],
              $7::bigint[], $8::bigint[], $9::text[], $10::integer[])
    AS v (id, holder, version, state, status_code, response, now, retry_at, outcome, attempt)
 WHERE q.id = ANY($1::text[]) AND q.id = v.id AND q.lease_owner IS NOT DISTINCT FROM v.holder
   AND q.version = v.version
RETURNING q.id, q.has_dependents

-- Rows (id, attempt, finished at, status, outcome, error, response, what was sent).
-- name: close_attempts
UPDATE attempts SET finished_at = v.now, status_code = v.status_code, outcome = v.outcome,
       error = v.error, response = v.response, sent = v.sent
  FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::integer[], $5::text[], $6::bytea[],
              $7::bytea[], $8::bytea[])
    AS v (id, attempt, now, status_code, outcome, error, response, sent)
 WHERE attempts.queue_id = v.id AND attempts.attempt = v.attempt AND attempts.finished_at = 0
RETURNING @CLOSED@

-- Rows (id, minute, outcome, lateness bucket, failed): closed attempts, counted in their
-- owner's minute by outcome, by lateness and (failed) by destination, in key order (two
-- nodes sharing a slot wait for each other but never deadlock).
-- name: count_attempts
INSERT INTO stats_counts AS s (owner_id, kind, minute, key, slot, n)
SELECT q.owner_id, k.kind, v.minute,
       CASE k.kind WHEN 'outcome' THEN v.outcome WHEN 'lateness' THEN v.bucket
                   ELSE q.destination END AS key,
       pg_backend_pid() % 16, count(*)
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[])
    AS v (id, minute, outcome, bucket, failed)
  JOIN queues q ON q.id = v.id
 CROSS JOIN (SELECT 'outcome' AS kind UNION ALL SELECT 'lateness'
             UNION ALL SELECT 'failure') k
 WHERE k.kind <> 'failure' OR (v.failed AND q.destination IS NOT NULL)
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (owner_id, kind, minute, key, slot) DO UPDATE SET n = s.n + excluded.n

-- Rows (id, owner, created at, due, retry limit, request, metadata, the task it reports on).
-- name: insert_callbacks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, callback_of, labels, method, target, destination)
SELECT id, owner_id, 'RUNNING', created_at, due, retry_limit, request, metadata, callback_of,
       labels, method, target, destination
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
              $7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
    AS v (id, owner_id, created_at, due, retry_limit, request, metadata, callback_of, labels,
          method, target, destination)

-- Rows (callback id, task id).
-- name: set_callback_ids
UPDATE queues q SET callback_id = v.callback_id
  FROM unnest($1::text[], $2::text[]) AS v (callback_id, id) WHERE q.id = v.id

-- Rows (id, the last attempt number to delete).
-- name: prune_attempts
DELETE FROM attempts a USING unnest($1::text[], $2::integer[]) AS v (id, upto)
 WHERE a.queue_id = v.id AND a.attempt <= v.upto

-- A row another transaction is writing now (the task's start or outcome) is skipped, not
-- waited for: its lease is renewed next time, long before it ends. Waiting would hold the
-- locks already taken on thousands of rows, and the starts and outcomes of those would wait.
-- name: renew_leases
WITH renewed AS MATERIALIZED (
  SELECT id FROM queues WHERE lease_owner = $1 AND id = ANY($2::text[])
     FOR UPDATE SKIP LOCKED)
UPDATE queues SET lease_until = $3 FROM renewed WHERE queues.id = renewed.id

-- --- jobs and metrics --------------------------------------------------------------------

-- name: purge_finished
WITH doomed AS MATERIALIZED (
  SELECT id FROM queues
   WHERE state IN ('SUCCESS', 'ERROR', 'REVOKED') AND estimate_end_at < $1
     AND @NOT_NEEDED@
   LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM queues USING doomed WHERE queues.id = doomed.id

-- name: purge_idle_flows
WITH doomed AS MATERIALIZED (
  SELECT ctid FROM flows WHERE next_start_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM flows USING doomed WHERE flows.ctid = doomed.ctid

-- --- destinations' circuits (SPEC §18.1) -------------------------------------------------

-- Rows (id, owner, sealed address, now): a row for each destination that just failed.
-- name: add_destinations
INSERT INTO destinations (id, owner_id, address, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
ON CONFLICT (id) DO NOTHING

-- Rows (id, failures, error, now, threshold, open ms, cap ms, probe): a closed circuit opens
-- at `threshold` failures in a row; a failed probe keeps it open twice as long, to `cap`.
-- name: circuit_failed
UPDATE destinations d
   SET failures = d.failures + v.n, last_error = v.error, updated_at = v.now,
       open_until = CASE
         WHEN d.open_until = 0 AND d.failures + v.n >= v.threshold THEN v.now + v.open_ms
         WHEN d.open_until > 0 AND v.probe = 1 THEN v.now + least(d.open_ms * 2, v.cap)
         ELSE d.open_until END,
       open_ms = CASE
         WHEN d.open_until = 0 AND d.failures + v.n >= v.threshold THEN v.open_ms
         WHEN d.open_until > 0 AND v.probe = 1 THEN least(d.open_ms * 2, v.cap)
         ELSE d.open_ms END,
       probe_until = CASE WHEN v.probe = 1 THEN 0 ELSE d.probe_until END
  FROM unnest($1::text[], $2::integer[], $3::bytea[], $4::bigint[], $5::integer[],
              $6::bigint[], $7::bigint[], $8::integer[])
    AS v (id, n, error, now, threshold, open_ms, cap, probe)
 WHERE d.id = v.id

-- Rows (id, now): an answer closes the circuit; the ids closed (or reset) come back.
-- name: circuit_answered
UPDATE destinations d SET failures = 0, open_until = 0, open_ms = 0, probe_until = 0,
                          updated_at = v.now
  FROM unnest($1::text[], $2::bigint[]) AS v (id, now)
 WHERE d.id = v.id AND (d.failures > 0 OR d.open_until > 0)
RETURNING d.id

-- Closed circuits unchanged since before $1: a destination that answers (or is gone).
-- name: purge_idle_destinations
WITH doomed AS MATERIALIZED (
  SELECT id FROM destinations WHERE open_until = 0 AND updated_at < $1
   LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM destinations USING doomed WHERE destinations.id = doomed.id

-- --- workflows (SPEC §17) -------------------------------------------------------------------

-- The owner's tasks $2 a registration depends on, marked as having dependents so their
-- responses are kept for placeholders. Their rows stay locked to the end of the registration,
-- so an outcome ending one of them commits either before (its state is read here) or after
-- (its release reads the dependencies committed here): never between.
-- name: mark_parents
UPDATE queues SET has_dependents = 1 WHERE owner_id = $1 AND id = ANY($2::text[])
RETURNING id, state

-- Rows (id, owner, state, created at, due, retry limit, request, metadata, flow key,
-- parallelism, rate, batch, pending, release delay, status, end, callback due, dependents,
-- ref, labels, method, target, destination).
-- name: insert_linked_tasks
INSERT INTO queues (id, owner_id, state, created_at, estimate_execution_at, retry_limit,
                    request, metadata, flow_key, flow_parallelism, flow_rate, batch_id,
                    pending_deps, release_delay, status_code, estimate_end_at, callback_due,
                    has_dependents, ref, labels, method, target, destination)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                     $6::integer[], $7::bytea[], $8::bytea[], $9::text[], $10::integer[],
                     $11::double precision[], $12::text[], $13::integer[], $14::bigint[],
                     $15::integer[], $16::bigint[], $17::integer[], $18::integer[],
                     $19::text[], $20::text[], $21::text[], $22::text[], $23::text[])
RETURNING @COLUMNS@

-- Rows (task, the task it depends on, the name its placeholders use, requireSuccess).
-- name: insert_dependencies
INSERT INTO dependencies (queue_id, depends_on, name, require_success)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])

-- The dependents that required the tasks $1 to succeed, which failed or went: they end
-- ERROR 424 (Failed Dependency), their failureCallback to be queued.
-- name: fail_dependents
UPDATE queues SET state = 'ERROR', status_code = 424, estimate_end_at = $2, paused_at = NULL,
                  callback_due = 1, version = version + 1
 WHERE state IN ('WAITING', 'PAUSED') AND pending_deps > 0
   AND id IN (SELECT queue_id FROM dependencies
               WHERE require_success = 1 AND depends_on = ANY($1::text[]))
RETURNING id

-- The other dependents of the tasks $1, which finished: one dependency fewer to wait for; one
-- waiting for none is due `release_delay` from now $2, or at its executeAt. Two parents ending
-- at once on two nodes update the row in turn, the second seeing the first's count.
-- name: release_dependents
UPDATE queues q SET pending_deps = q.pending_deps - d.n,
       state = CASE WHEN q.state = 'WAITING' AND q.pending_deps = d.n THEN 'RUNNING'
                    ELSE q.state END,
       estimate_execution_at = CASE WHEN q.pending_deps = d.n
                                    THEN greatest(q.estimate_execution_at, $2 + q.release_delay)
                                    ELSE q.estimate_execution_at END,
       version = q.version + 1
  FROM (SELECT queue_id, count(*) AS n FROM dependencies
         WHERE depends_on = ANY($1::text[]) GROUP BY queue_id) d
 WHERE q.id = d.queue_id AND q.state IN ('WAITING', 'PAUSED') AND q.pending_deps > 0

-- Rows (id): whose callback_due this transaction clears (once, whichever process sweeps).
-- name: clear_callback_due
UPDATE queues q SET callback_due = 0 FROM unnest($1::text[]) AS v (id)
 WHERE q.id = v.id AND q.callback_due = 1
RETURNING q.id

