-- name: last-engaged
-- When the customer last engaged: a recorded signal, a reply from the
-- customer, a one-click answer, or a journey goal reached. NULL if never.
SELECT greatest(
    (SELECT max(at) FROM engagements WHERE customer_id = $1),
    (SELECT max(received_at) FROM replies WHERE customer_id = $1 AND from_customer),
    (SELECT max(answered_at) FROM survey_answers WHERE customer_id = $1),
    (SELECT max(ended_at) FROM journey_runs WHERE customer_id = $1 AND outcome = 'goal'));

-- name: insert-engagement
INSERT INTO engagements (customer_id, message_key, kind, at)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING;
