-- name: insert-event
-- Returns whether the event is new, and whether it was dispatched before.
WITH ins AS (
    INSERT INTO events (id, type, customer_id, occurred_at, data)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO NOTHING
    RETURNING true AS inserted
)
SELECT coalesce((SELECT inserted FROM ins), false),
       (SELECT dispatched_at IS NOT NULL FROM events WHERE id = $1 AND type = $2 AND customer_id = $3);

-- name: mark-event-dispatched
UPDATE events SET dispatched_at = now() WHERE id = $1 AND dispatched_at IS NULL;

-- name: latest-run
SELECT started_at, trigger_event_id, ended_at IS NULL
FROM journey_runs
WHERE journey_id = $1 AND customer_id = $2 AND run_key = $3
ORDER BY started_at DESC
LIMIT 1;

-- name: insert-run
INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, run_key, trigger_event_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (journey_id, trigger_event_id) DO NOTHING;

-- name: finish-run
UPDATE journey_runs
SET ended_at = coalesce(ended_at, now()), outcome = $3
WHERE journey_id = $1 AND trigger_event_id = $2;

-- name: open-runs
SELECT DISTINCT ON (workflow_id) workflow_id, customer_id, version
FROM journey_runs
WHERE journey_id = $1 AND ended_at IS NULL
ORDER BY workflow_id, started_at DESC;
