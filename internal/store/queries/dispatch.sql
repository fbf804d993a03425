-- name: claim-due-events
-- Events of one lane whose routing is due: never routed although the
-- request path had $2 to do it (the replica that accepted them died or
-- hung), or failed and past their backoff. Per customer only the oldest
-- undispatched event of the lane is due, so a customer's events keep their
-- order while one is retried and no other customer waits for it. Claimed
-- events are leased for $4 (next_attempt_at moves on).
WITH due AS (
    SELECT e.id, e.received_at
    FROM events e
    WHERE e.lane = $1 AND e.dispatched_at IS NULL AND e.dead_at IS NULL
      AND e.next_attempt_at <= now() AND e.received_at <= now() - $2::interval
      AND NOT EXISTS (
          SELECT 1 FROM events o
          WHERE o.customer_id = e.customer_id AND o.lane = e.lane
            AND o.dispatched_at IS NULL AND o.dead_at IS NULL AND o.seq < e.seq)
    ORDER BY e.next_attempt_at, e.seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE events e SET next_attempt_at = now() + $4::interval
FROM due
WHERE e.id = due.id AND e.received_at = due.received_at
RETURNING e.id, e.type, e.customer_id, e.occurred_at, e.data, e.attempts;

-- name: extend-claims
-- Keeps claimed events ($1, with the attempts they had when claimed, $2)
-- from other passes for $3 more while a sweeper routes them: it renews a
-- short lease as it works, so one that hangs loses its events within a
-- lease. An event that failed meanwhile (attempts moved on) keeps its
-- backoff; routed and dead events are left alone.
UPDATE events e SET next_attempt_at = now() + $3::interval
FROM unnest($1::text[], $2::int[]) AS c(id, attempts)
WHERE e.id = c.id AND e.attempts = c.attempts AND e.dispatched_at IS NULL AND e.dead_at IS NULL;

-- name: events-blocked
-- Of these events, those with an older event of the same customer and lane
-- that failed and waits for a retry: the request path leaves them to the
-- sweeper, which keeps the customer's order.
SELECT e.id
FROM events e
WHERE e.id = ANY($1::text[])
  AND EXISTS (
      SELECT 1 FROM events o
      WHERE o.customer_id = e.customer_id AND o.lane = e.lane
        AND o.dispatched_at IS NULL AND o.dead_at IS NULL AND o.attempts > 0 AND o.seq < e.seq);

-- name: event-failed
-- One more failed attempt: back off (1 s, doubling, at most 5 min) and give
-- up after $3 attempts. The error is kept once, truncated.
UPDATE events
SET attempts = attempts + 1,
    next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes'),
    dispatch_error = left($2, 500),
    dead_at = CASE WHEN attempts + 1 >= $3 THEN now() END
WHERE id = $1 AND dispatched_at IS NULL
RETURNING attempts, dead_at IS NOT NULL;

-- name: upsert-route
-- A journey's routing outcome for an event. An event parked again keeps
-- its first park_until: retries do not extend how long it may wait. The
-- same outcome recorded again keeps the time it was first reached: a
-- replica that hung between its start and its settle settles
-- after the sweeper did, and whether it says it started the run or
-- signalled it, the event reached that run when the sweeper said. A new
-- outcome takes the time of now.
-- A route its run handed back (requeued) is replaced only by routing it
-- again, and only if it is still the hand-back that routing read ($7, its
-- routed_at; compare and set): any other settle is older than the
-- hand-back (a replica that hung between its signal and its settle), and
-- a hand-back that came while the event was routed again (the run it
-- reached was finishing too) is newer than that routing. Either way the
-- event must still be routed again. Every hand-back takes a new time.
-- The route is stored in its event's month (received_at, from
-- event_ids); nothing is stored for an event lojal does not know.
INSERT INTO event_routes AS r (event_id, journey_id, workflow_id, action, reason, park_until, received_at)
SELECT $1, $2, $3, $4, $5, $6, k.received_at FROM event_ids k WHERE k.id = $1
ON CONFLICT (event_id, journey_id, received_at) DO UPDATE
SET workflow_id = EXCLUDED.workflow_id, action = EXCLUDED.action, reason = EXCLUDED.reason,
    park_until = CASE WHEN r.action = 'parked' AND EXCLUDED.action = 'parked' THEN r.park_until ELSE EXCLUDED.park_until END,
    routed_at = CASE WHEN EXCLUDED.action <> 'requeued' AND r.workflow_id = EXCLUDED.workflow_id
                      AND (r.action = EXCLUDED.action
                           OR (r.action IN ('started', 'signalled') AND EXCLUDED.action IN ('started', 'signalled')))
                     THEN r.routed_at ELSE now() END
WHERE CASE WHEN $7::timestamptz IS NOT NULL THEN r.action = 'requeued' AND r.routed_at = $7
           ELSE r.action <> 'requeued' OR EXCLUDED.action = 'requeued' END;

-- name: parked-for-workflow
-- Events that arrived before the run they concern existed, oldest first.
SELECT r.event_id, r.journey_id, e.type, e.customer_id, e.occurred_at, e.data
FROM event_routes r
JOIN events e ON e.id = r.event_id AND e.received_at = r.received_at
WHERE r.workflow_id = $1 AND r.action = 'parked'
ORDER BY e.occurred_at, e.seq;

-- name: waiting-routes
-- Routes due another look: events a finishing run handed back (requeued)
-- once they have waited $1; parked events whose run has started since
-- (within the park window $2: a replica that started it may have died
-- before delivering them); and parked events whose time is up.
(SELECT r.event_id, r.journey_id, r.workflow_id, r.action, r.park_until, r.routed_at, e.type, e.customer_id, e.occurred_at, e.data
 FROM event_routes r JOIN events e ON e.id = r.event_id AND e.received_at = r.received_at
 WHERE r.action = 'requeued' AND r.routed_at <= now() - $1::interval
 ORDER BY r.routed_at LIMIT $3)
UNION ALL
(SELECT r.event_id, r.journey_id, r.workflow_id, r.action, r.park_until, r.routed_at, e.type, e.customer_id, e.occurred_at, e.data
 FROM journey_runs j
 JOIN event_routes r ON r.workflow_id = j.workflow_id AND r.action = 'parked'
 JOIN events e ON e.id = r.event_id AND e.received_at = r.received_at
 WHERE j.ended_at IS NULL AND j.run_id <> '' AND j.started_at > now() - $2::interval
 LIMIT $3)
UNION ALL
(SELECT r.event_id, r.journey_id, r.workflow_id, r.action, r.park_until, r.routed_at, e.type, e.customer_id, e.occurred_at, e.data
 FROM event_routes r JOIN events e ON e.id = r.event_id AND e.received_at = r.received_at
 WHERE r.action = 'parked' AND r.park_until <= now()
 ORDER BY r.park_until LIMIT $3);

-- name: event-routes
SELECT journey_id, workflow_id, action, reason, park_until, routed_at
FROM event_routes
WHERE event_id = $1
ORDER BY journey_id;

-- name: event-by-id
SELECT id, type, customer_id, occurred_at, data, received_at, lane, attempts, next_attempt_at, dispatched_at, dead_at, dispatch_error
FROM events
WHERE id = $1;

-- name: dead-events
SELECT id, type, customer_id, occurred_at, data, received_at, lane, attempts, next_attempt_at, dispatched_at, dead_at, dispatch_error
FROM events
WHERE dead_at IS NOT NULL AND dispatched_at IS NULL
ORDER BY dead_at DESC, seq DESC
LIMIT $1;

-- name: retry-event
-- Gives a dead-lettered (or failing) event a fresh set of attempts, now.
UPDATE events
SET dead_at = NULL, attempts = 0, next_attempt_at = now(), dispatch_error = ''
WHERE id = $1 AND dispatched_at IS NULL;

-- name: drop-event
-- Gives up on an event for good, with who and why.
UPDATE events
SET dispatched_at = now(), dead_at = coalesce(dead_at, now()), dispatch_error = left($2, 500)
WHERE id = $1 AND dispatched_at IS NULL;

-- name: dispatch-stats
-- Undispatched events per lane, dead letters, and how long the oldest live
-- one has waited (seconds).
SELECT count(*) FILTER (WHERE dead_at IS NULL AND lane = 'live'),
       count(*) FILTER (WHERE dead_at IS NULL AND lane = 'bulk'),
       count(*) FILTER (WHERE dead_at IS NOT NULL),
       coalesce(extract(epoch FROM now() - min(received_at) FILTER (WHERE dead_at IS NULL AND lane = 'live')), 0)::float8
FROM events
WHERE dispatched_at IS NULL;

-- name: undispatched-events
SELECT id, type, customer_id, occurred_at, data
FROM events
WHERE dispatched_at IS NULL AND dead_at IS NULL
ORDER BY seq
LIMIT $1;

-- name: run-by-entry
SELECT id, workflow_id, run_id, started_at, trigger_event_id, ended_at IS NULL
FROM journey_runs
WHERE journey_id = $1 AND trigger_event_id = $2;

-- name: set-run-id
-- The run id routing learnt from the start, unless the row has one: the
-- run claims its row when it starts (claim-entry) and knows its own id,
-- while the start returns the id of whatever run it reached (a late start
-- that ends at once, a finishing run it only signalled).
UPDATE journey_runs SET run_id = $2 WHERE id = $1 AND run_id = '';

-- name: close-run
-- Closes a run that ended without recording it (failed, terminated, timed
-- out), as Temporal reports it, and gives up its messages' places in the
-- customer's line (see finish-run). Returns the rows closed: 0 when it was
-- closed already.
WITH closed AS (
    UPDATE journey_runs
    SET ended_at = now(), outcome = $2
    WHERE id = $1 AND ended_at IS NULL
    RETURNING workflow_id, run_id
), released AS (
    DELETE FROM waiting_messages w
    USING closed c
    WHERE c.run_id <> '' AND w.workflow_id = c.workflow_id AND w.run_id = c.run_id
)
SELECT count(*) FROM closed;

-- name: runs-to-check
-- Open runs the reconciler has checked least recently.
SELECT id, workflow_id, run_id, journey_id, trigger_event_id, started_at
FROM journey_runs
WHERE ended_at IS NULL AND started_at < now() - $1::interval
ORDER BY checked_at NULLS FIRST, id
LIMIT $2;

-- name: mark-runs-checked
UPDATE journey_runs SET checked_at = now() WHERE id = ANY($1::bigint[]);

-- name: record-firing
INSERT INTO schedule_firings (journey_id, fire_at, zones, status, reason, scanned, enrolled)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (journey_id, fire_at) DO UPDATE
SET zones = EXCLUDED.zones, status = EXCLUDED.status, reason = EXCLUDED.reason,
    scanned = EXCLUDED.scanned, enrolled = EXCLUDED.enrolled, recorded_at = now();

-- name: recent-firings
SELECT journey_id, fire_at, zones, status, reason, scanned, enrolled
FROM schedule_firings
WHERE journey_id = $1
ORDER BY fire_at DESC
LIMIT $2;
