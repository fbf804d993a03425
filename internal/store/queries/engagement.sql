-- name: last-engaged
-- When the customer last engaged: a recorded signal, a reply from the
-- customer, a one-click answer (or a later change of it), or a journey
-- goal reached. NULL if never.
SELECT greatest(
    (SELECT max(at) FROM engagements WHERE customer_id = $1),
    (SELECT max(received_at) FROM replies WHERE customer_id = $1 AND from_customer),
    (SELECT max(answered_at) FROM survey_answers WHERE customer_id = $1),
    (SELECT max(changed_at) FROM survey_answer_changes WHERE customer_id = $1),
    (SELECT max(ended_at) FROM journey_runs WHERE customer_id = $1 AND outcome = 'goal'));

-- name: insert-engagement
INSERT INTO engagements (customer_id, message_key, kind, at)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING;

-- name: record-click
-- One row per message clicked (migrations/017): a later click moves its
-- time forward, an earlier one arriving late changes nothing. Returns
-- whether this was the message's first click.
INSERT INTO engagements (customer_id, message_key, kind, at)
VALUES ($1, $2, 'click', $3)
ON CONFLICT (customer_id, message_key) WHERE kind = 'click'
DO UPDATE SET at = greatest(engagements.at, excluded.at)
RETURNING xmax = 0;

-- name: prune-engagements
-- Engagement signals before $1 (the ledger's cutoff: a signal older than
-- every message it could be weighed against says nothing), in batches of
-- $2 (migrations/020: engagements_at).
DELETE FROM engagements
WHERE id IN (SELECT id FROM engagements WHERE at < $1 ORDER BY at LIMIT $2);

-- name: customer-engagements
SELECT customer_id, message_key, kind, at
FROM engagements
WHERE customer_id = $1
ORDER BY at DESC, id DESC;
