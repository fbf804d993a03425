-- name: partitioned-tables
SELECT table_name FROM partitioned_tables ORDER BY 1;

-- name: ensure-partitions
-- Creates the monthly partitions of table $1 covering [$2, $3) that are
-- missing, and returns their names.
SELECT ensure_monthly_partitions($1, $2, $3);

-- name: expired-partitions
-- The partitions of table $1 whose every row is older than $2, oldest
-- first; detach_pending marks one a detach began on and did not finish.
SELECT partition, detach_pending FROM partition_bounds($1) WHERE upper_bound <= $2 ORDER BY upper_bound;

-- name: partitions
SELECT partition, lower_bound, upper_bound FROM partition_bounds($1) ORDER BY lower_bound;

-- name: prune-event-ids
-- Forgets the ids of events no partition holds any more (older than the
-- oldest events partition), in batches of $1. While the legacy partition
-- (unbounded below) is kept, nothing is forgotten.
WITH oldest AS (
    SELECT coalesce(min(lower_bound), 'infinity') AS at FROM partition_bounds('events')
)
DELETE FROM event_ids
WHERE id IN (SELECT k.id FROM event_ids k, oldest WHERE k.received_at < oldest.at ORDER BY k.received_at LIMIT $1);

-- name: prune-push-deliveries
-- What each push subscription did with a message, for messages whose
-- ledger months are gone ($1: the ledger's cutoff), in batches of $2.
DELETE FROM push_deliveries
WHERE (idempotency_key, subscription_id) IN (
    SELECT idempotency_key, subscription_id FROM push_deliveries WHERE updated_at < $1 ORDER BY updated_at LIMIT $2);

-- name: prune-schedule-firings
DELETE FROM schedule_firings
WHERE (journey_id, fire_at) IN (
    SELECT journey_id, fire_at FROM schedule_firings WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2);

-- name: prune-runs
-- One batch of a pass over journey runs that ended before $1, in the
-- order they ended, from where the last batch stopped (retention_cursors):
-- deletes those a later run of the same journey, customer and key
-- supersedes. The latest run stays whatever its age: reentry rules
-- ("once", "after 30 days") read it. Returns how many runs it read and
-- how many it deleted.
WITH cur AS (
    SELECT coalesce((SELECT at FROM retention_cursors WHERE name = 'journey_runs'), '-infinity') AS at,
           coalesce((SELECT id FROM retention_cursors WHERE name = 'journey_runs'), 0) AS id
), batch AS (
    SELECT j.id, j.ended_at FROM journey_runs j, cur
    WHERE j.ended_at IS NOT NULL AND (j.ended_at, j.id) > (cur.at, cur.id) AND j.ended_at < $1
    ORDER BY j.ended_at, j.id
    LIMIT $2
), gone AS (
    DELETE FROM journey_runs j
    USING batch b
    WHERE j.id = b.id AND EXISTS (
        SELECT 1 FROM journey_runs n
        WHERE n.journey_id = j.journey_id AND n.customer_id = j.customer_id AND n.run_key = j.run_key
          AND (n.started_at, n.id) > (j.started_at, j.id))
    RETURNING j.id
), moved AS (
    INSERT INTO retention_cursors (name, at, id)
    SELECT 'journey_runs', ended_at, id FROM batch ORDER BY ended_at DESC, id DESC LIMIT 1
    ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at, id = EXCLUDED.id
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone);

-- name: reset-runs-cursor
-- A pass reached the cutoff: the next starts from the oldest run again
-- (the latest runs it kept may have been superseded since).
INSERT INTO retention_cursors (name) VALUES ('journey_runs')
ON CONFLICT (name) DO UPDATE SET at = '-infinity', id = 0;
