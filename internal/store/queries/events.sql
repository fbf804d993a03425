-- name: insert-event
-- Returns whether the event is new; whether it was dispatched before,
-- NULL when the id is stored with other content (a conflict, not a
-- redelivery); and whether the customer exists (nothing is stored for
-- one who does not). The id is claimed in event_ids, which keeps ids
-- unique across the monthly partitions of events.
WITH fresh AS (
    INSERT INTO event_ids (id)
    SELECT $1 WHERE EXISTS (SELECT 1 FROM customers WHERE id = $3)
    ON CONFLICT (id) DO NOTHING
    RETURNING received_at
), ins AS (
    INSERT INTO events (id, type, customer_id, occurred_at, data, lane, received_at)
    SELECT $1, $2, $3, $4, $5, 'live', received_at FROM fresh
    RETURNING true AS inserted
)
SELECT coalesce((SELECT inserted FROM ins), false),
       (SELECT dispatched_at IS NOT NULL FROM events
        WHERE id = $1 AND type = $2 AND customer_id = $3 AND occurred_at = $4 AND data = $5::jsonb),
       EXISTS (SELECT 1 FROM customers WHERE id = $3);

-- name: mark-event-dispatched
UPDATE events SET dispatched_at = now() WHERE id = $1 AND dispatched_at IS NULL;

-- name: latest-run
SELECT id, workflow_id, run_id, started_at, trigger_event_id, ended_at IS NULL
FROM journey_runs
WHERE journey_id = $1 AND customer_id = $2 AND run_key = $3
ORDER BY started_at DESC
LIMIT 1;

-- name: insert-run
-- Returns the row's id when this call recorded the run; nothing when the
-- run of this entry was recorded before. Only the caller that recorded it
-- may start it.
INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, run_key, trigger_event_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (journey_id, trigger_event_id) DO NOTHING
RETURNING id;

-- name: latest-run-or-record
-- latest-run, and when the customer has no run of the journey under this
-- key yet, insert-run in the same statement: a first run needs no reentry
-- rule, so it is recorded without another round trip. Returns the new
-- row's id (NULL when nothing was recorded: there is a latest run, or the
-- entry's run was recorded before), then the latest run's columns (NULL
-- when there is none).
WITH last AS (
    SELECT id, workflow_id, run_id, started_at, trigger_event_id, ended_at IS NULL AS open
    FROM journey_runs
    WHERE journey_id = $2 AND customer_id = $4 AND run_key = $5
    ORDER BY started_at DESC
    LIMIT 1
), ins AS (
    INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, run_key, trigger_event_id)
    SELECT $1, $2, $3, $4, $5, $6
    WHERE NOT EXISTS (SELECT 1 FROM last)
    ON CONFLICT (journey_id, trigger_event_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM ins), last.id, last.workflow_id, last.run_id, last.started_at, last.trigger_event_id, last.open
FROM (SELECT 1) AS one
LEFT JOIN last ON true;

-- name: finish-run
-- Records how a run ended, and gives up the places its messages held in
-- the customer's line: a message the run deferred (waiting_messages) will
-- never ask again, and would otherwise hold back the customer's other
-- messages of its priority until a minute past its due time. The run is
-- its chain (workflow id and first run id): a new run of the same
-- workflow id keeps its places.
WITH finished AS (
    UPDATE journey_runs
    SET ended_at = coalesce(ended_at, now()), outcome = $3
    WHERE journey_id = $1 AND trigger_event_id = $2
    RETURNING workflow_id, run_id
)
DELETE FROM waiting_messages w
USING finished f
WHERE f.run_id <> '' AND w.workflow_id = f.workflow_id AND w.run_id = f.run_id;

-- name: open-runs
SELECT DISTINCT ON (workflow_id) workflow_id, customer_id, version
FROM journey_runs
WHERE journey_id = $1 AND ended_at IS NULL
ORDER BY workflow_id, started_at DESC;

-- name: generic-plans
-- For this transaction only, run prepared statements on their generic
-- plan. The request path's statements touch every monthly partition of
-- events (an id names no month) and Postgres, judging a plan over all of
-- them dearer than one for the values at hand, would plan them again on
-- every call: 0.4 to 0.7 ms of planning for 0.15 ms of work (measured with
-- pg_stat_statements in the event dispatch benchmark).
-- A generic plan is made once per connection and kept until one of its
-- tables is vacuumed, analyzed to new sizes or has partitions attached or
-- detached: made while this month's partition was small, it scanned the
-- whole month for every event until then (54 blocks and 2,400 rows for
-- one mark in the benchmark). These statements find events by id and
-- customer, for which an index always serves, so their plans use one.
-- (upsert-route and set-run-id also run outside these transactions, where
-- their plan may be made first; both find their row by primary key.)
SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true);

-- name: insert-events
-- Accepts many events in one statement, in one lane, and returns those that
-- were new. Events of customers lojal does not know are not stored (the
-- caller asks which, when some event was not new). Each id is claimed in
-- event_ids first (the first of an id offered twice wins), and events are
-- numbered (seq) in the order they were offered. For the live lane each
-- new event also comes with what routing it in the request path needs: its
-- customer (the row and consent ledger get-customer reads) and whether an
-- older event of the customer failed and waits for a retry (events-blocked:
-- then the sweeper routes it, in order). Bulk enrolments skip both. The
-- look for a failed event is a lateral probe of the customer's own
-- waiting events: as an EXISTS, Postgres hashed every waiting live event
-- of every customer, on every accept.
WITH offered AS (
    SELECT DISTINCT ON (n.id) n.id, n.type, n.customer_id, n.occurred_at, n.data, n.ord
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])
         WITH ORDINALITY AS n(id, type, customer_id, occurred_at, data, ord)
    WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = n.customer_id)
    ORDER BY n.id, n.ord
), fresh AS (
    INSERT INTO event_ids (id)
    SELECT id FROM offered
    ON CONFLICT (id) DO NOTHING
    RETURNING id, received_at
), ins AS (
    INSERT INTO events (id, type, customer_id, occurred_at, data, lane, received_at)
    SELECT o.id, o.type, o.customer_id, o.occurred_at, o.data, $6, f.received_at
    FROM offered o JOIN fresh f USING (id)
    ORDER BY o.ord
    RETURNING id, customer_id
)
SELECT ins.id,
       failed.one IS NOT NULL,
       c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes,
       CASE WHEN $6 = 'live' THEN consent_ledger_json(c.id) END
FROM ins
LEFT JOIN LATERAL (
    SELECT 1 AS one FROM events o
    WHERE $6 = 'live' AND o.customer_id = ins.customer_id AND o.lane = $6
      AND o.dispatched_at IS NULL AND o.dead_at IS NULL AND o.attempts > 0
    LIMIT 1
) failed ON true
LEFT JOIN customers c ON $6 = 'live' AND c.id = ins.customer_id;

-- name: events-differ
-- Of events just offered again (ids already stored), the positions of
-- those whose stored content differs: the same id for another event is a
-- conflict, not a redelivery. jsonb compares by value, so key order and
-- number spelling do not matter.
SELECT n.ord
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) WITH ORDINALITY AS n(id, type, customer_id, occurred_at, data, ord)
JOIN events e ON e.id = n.id
WHERE (e.type, e.customer_id, e.occurred_at, e.data) IS DISTINCT FROM (n.type, n.customer_id, n.occurred_at, n.data);

-- name: redelivered-unrouted
-- Of live events offered again, those not routed yet: the replica that
-- stored them died or hung before routing them, and their client, with no
-- answer, sent them again. The request path routes them now, before the
-- client sends the customer's next event; they come with the columns
-- insert-events returns (a blocked one stays the sweeper's). One that
-- failed (attempts, backoff) or that the sweeper has claimed
-- (next_attempt_at moved on) is left to the sweeper.
SELECT e.id,
       EXISTS (
           SELECT 1 FROM events o
           WHERE o.customer_id = e.customer_id AND o.lane = e.lane
             AND o.dispatched_at IS NULL AND o.dead_at IS NULL AND o.attempts > 0 AND o.seq < e.seq),
       c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes, consent_ledger_json(c.id)
FROM events e
JOIN customers c ON c.id = e.customer_id
WHERE e.id = ANY($1::text[]) AND e.lane = 'live' AND e.dispatched_at IS NULL AND e.dead_at IS NULL
  AND e.attempts = 0 AND e.next_attempt_at <= now();

-- name: customers-exist
SELECT id FROM customers WHERE id = ANY($1::text[]);

-- name: mark-events-dispatched
UPDATE events SET dispatched_at = now(), dispatch_error = '' WHERE id = ANY($1::text[]);

-- name: insert-token
INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2) RETURNING id;

-- name: token-by-hash
SELECT id, name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: revoke-token
UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL;

-- name: insert-deployment
INSERT INTO journey_deployments (hash, files, summary, deployed_by) VALUES ($1, $2, $3, $4) RETURNING id, deployed_at;

-- name: latest-deployment
SELECT id, hash, files, deployed_at FROM journey_deployments ORDER BY id DESC LIMIT 1;

-- name: latest-deployment-id
SELECT coalesce(max(id), 0) FROM journey_deployments;

-- name: customers-page
-- Keyset pagination through customers in some time zones, for scheduled
-- enrolment without loading everyone.
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes, '[]'::jsonb
FROM customers c
WHERE c.timezone = ANY($1::text[]) AND c.id > $2
ORDER BY c.id
LIMIT $3;

-- name: customer-timezones
-- The distinct time zones, one index probe each (a skip scan of
-- customers_timezone): a scheduled journey asks at every firing, and
-- reading every customer to learn twenty zones would not do.
WITH RECURSIVE zone AS (
    (SELECT timezone FROM customers ORDER BY timezone LIMIT 1)
    UNION ALL
    SELECT (SELECT c.timezone FROM customers c WHERE c.timezone > zone.timezone ORDER BY c.timezone LIMIT 1)
    FROM zone
    WHERE zone.timezone IS NOT NULL
)
SELECT timezone FROM zone WHERE timezone IS NOT NULL;
