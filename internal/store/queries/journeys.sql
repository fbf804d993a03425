-- Holdouts and the journeys report (docs/holdouts.md).

-- name: record-run-group
-- Which group a run is in: held out ($3 true) or treated.
UPDATE journey_runs SET holdout = $3 WHERE journey_id = $1 AND trigger_event_id = $2;

-- name: claim-entry
-- A run's first execution claims its entry's run row ($1 journey, $2
-- entry) with its run id ($3): it takes a row whose run is not over and
-- has no other run id. Returns whether it took it and whether the entry
-- has a row at all (runs started outside routing have none).
WITH claimed AS (
    UPDATE journey_runs SET run_id = $3
    WHERE journey_id = $1 AND trigger_event_id = $2 AND ended_at IS NULL AND run_id IN ('', $3)
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM claimed),
       EXISTS (SELECT 1 FROM journey_runs WHERE journey_id = $1 AND trigger_event_id = $2);

-- name: insert-holdout-message
-- A message a held-out run would have sent. Never a ledger row.
INSERT INTO holdout_messages (request_key, customer_id, workflow_id, journey_id, journey_version, step_id, template,
    channel, topic, purpose, priority, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (request_key) DO NOTHING;

-- name: journey-entrants
-- Runs that started from $1 to $2, per journey and group (NULL: the
-- journey had no holdout, counted as treated), and how many reached the
-- goal or the journey's declared outcome (reach-outcome).
SELECT journey_id, coalesce(holdout, false), count(*), count(*) FILTER (WHERE outcome = 'goal' OR outcome_at IS NOT NULL)
FROM journey_runs
WHERE started_at >= $1 AND started_at < $2
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: reach-outcome
-- A customer's event that is a journey's declared outcome, at $3: it
-- marks the customer's runs of the journey that the customer entered
-- within $4 before it, once (the first such event is kept). A run's entry
-- is when its trigger happened, or when it was recorded if that was
-- earlier: a run routed late (the sweeper's grace, a backoff, an import)
-- was entered before it was recorded, and both times are the client's
-- clock and the database's. Entry is never after started_at, so the
-- first condition on started_at only narrows the search.
UPDATE journey_runs r
SET outcome_at = $3::timestamptz
WHERE r.journey_id = $1 AND r.customer_id = $2 AND r.outcome_at IS NULL
  AND r.started_at >= $3::timestamptz - $4::interval
  AND least(r.started_at, coalesce(
        (SELECT e.occurred_at FROM event_ids k JOIN events e ON e.id = k.id AND e.received_at = k.received_at
         WHERE k.id = r.trigger_event_id),
        r.started_at)) BETWEEN $3::timestamptz - $4::interval AND $3::timestamptz;

-- name: journey-messages
-- Messages sent (or possibly delivered) from $1 to $2, per journey.
SELECT journey_id, count(*)
FROM contact_ledger
WHERE status IN ('sent', 'uncertain') AND decided_at >= $1 AND decided_at < $2
GROUP BY 1;

-- name: journey-would-have-sent
-- Messages held-out runs would have sent from $1 to $2, per journey.
SELECT journey_id, count(*)
FROM holdout_messages
WHERE at >= $1 AND at < $2
GROUP BY 1;

-- name: journey-complaints
-- Complaints received from $1 to $2, per journey of the message
-- complained about.
SELECT l.journey_id, count(*)
FROM complaints c
CROSS JOIN LATERAL (
    SELECT journey_id FROM contact_ledger
    WHERE message_id = c.message_id AND message_id <> ''
    LIMIT 1
) l
WHERE c.received_at >= $1 AND c.received_at < $2
GROUP BY 1;

-- name: journey-unsubscribes
-- Unsubscribes (one-click, or by email) from $1 to $2, per journey: that
-- of the message whose link the customer used, or, for one that names no
-- message (the preference centre, entries from before links named their
-- message) or a message sent before $3, of the last message the customer
-- got before it within 30 days ($3: $1 less 30 days, so only those months
-- of the ledger are read). One
-- unsubscribe withdraws several entries (channels, topics) at one time:
-- it counts once.
WITH u AS (
    SELECT DISTINCT customer_id, at, message_id
    FROM consent_ledger
    WHERE source = 'unsubscribe' AND action = 'withdraw' AND recorded_at >= $1 AND recorded_at < $2
)
SELECT l.journey_id, count(*)
FROM u
CROSS JOIN LATERAL (
    (SELECT journey_id FROM contact_ledger
     WHERE u.message_id <> '' AND message_id = u.message_id AND customer_id = u.customer_id
       AND decided_at >= $3 AND decided_at < $2
     LIMIT 1)
    UNION ALL
    (SELECT journey_id FROM contact_ledger
     WHERE customer_id = u.customer_id AND status IN ('sent', 'uncertain')
       AND decided_at >= $3 AND decided_at <= u.at AND decided_at >= u.at - interval '30 days'
     ORDER BY decided_at DESC
     LIMIT 1)
    LIMIT 1
) l
GROUP BY 1;

-- name: prune-holdout-messages
-- Messages held-out runs would have sent before $1 (the ledger's
-- cutoff: they are kept as long as the ledger), in batches of $2.
DELETE FROM holdout_messages
WHERE id IN (SELECT id FROM holdout_messages WHERE at < $1 ORDER BY at LIMIT $2);

-- name: customer-holdout-messages
-- The messages a customer's held-out runs would have sent, oldest first
-- (lojal why).
SELECT journey_id, step_id, template, channel, at
FROM holdout_messages
WHERE customer_id = $1
ORDER BY at, id;
