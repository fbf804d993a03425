-- name: replied-message
-- The email a reply answers, with what the reply event and the helper
-- need: who it went to, from which journey and step. message_id <> ''
-- lets a generic plan use the partial index contact_ledger_message_id
-- in each month's partition.
SELECT l.customer_id, l.message_id, l.address, l.journey_id, l.step_id, l.topic, l.contacted_at, l.subject,
       c.email
FROM contact_ledger l
JOIN customers c ON c.id = l.customer_id
WHERE l.message_id = $1 AND l.message_id <> '' AND l.channel = 'email' AND l.status IN ('sent', 'uncertain')
ORDER BY l.id
LIMIT 1;

-- name: open-conversation
-- Opens a conversation for the customer, or finds the one already open.
WITH ins AS (
    INSERT INTO conversations (id, customer_id, message_id, journey_id, step_id, topic, helper, opened_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (customer_id) WHERE answered_at IS NULL DO NOTHING
    RETURNING id, true AS opened
)
SELECT id, opened FROM ins
UNION ALL
SELECT id, false FROM conversations WHERE customer_id = $2 AND answered_at IS NULL
LIMIT 1;

-- name: insert-reply
-- A redelivered reply (the same message over SMTP again) is stored once.
INSERT INTO replies (id, customer_id, conversation_id, message_id, journey_id, step_id, from_address, from_customer,
                     source, subject, body, event_id, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: conversation-state
-- What the policy needs: the open conversation, else the last answered.
SELECT opened_at, answered_at
FROM conversations
WHERE customer_id = $1
ORDER BY (answered_at IS NULL) DESC, coalesce(answered_at, opened_at) DESC
LIMIT 1;

-- name: conversation-by-id
SELECT id, customer_id, message_id, journey_id, step_id, topic, helper, opened_at, answered_at, answered_by, escalated_at
FROM conversations
WHERE id = $1;

-- name: answer-conversation
-- The first answer counts; answering again changes nothing.
UPDATE conversations SET answered_at = $2, answered_by = $3
WHERE id = $1 AND answered_at IS NULL
RETURNING id;

-- name: mark-escalated
UPDATE conversations SET escalated_at = $2
WHERE id = $1 AND answered_at IS NULL AND escalated_at IS NULL
RETURNING id;

-- name: reply-by-id
SELECT id, customer_id, coalesce(conversation_id, ''), message_id, journey_id, step_id, from_address, from_customer,
       source, subject, body, event_id, received_at
FROM replies
WHERE id = $1;

-- name: customer-replies
SELECT id, customer_id, coalesce(conversation_id, ''), message_id, journey_id, step_id, from_address, from_customer,
       source, subject, body, event_id, received_at
FROM replies
WHERE customer_id = $1
ORDER BY received_at, id;

-- name: customer-conversations
SELECT id, customer_id, message_id, journey_id, step_id, topic, helper, opened_at, answered_at, answered_by, escalated_at
FROM conversations
WHERE customer_id = $1
ORDER BY opened_at, id;

-- name: insert-survey-answer
-- The first answer to a question counts: a later one inserts nothing.
INSERT INTO survey_answers (customer_id, survey, answer, event_id, answered_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (customer_id, survey) DO NOTHING
RETURNING event_id;

-- name: survey-answer
SELECT answer, free_text, event_id, answered_at FROM survey_answers WHERE customer_id = $1 AND survey = $2;

-- name: insert-survey-change
-- A change is noted when it differs from the latest answer noted, so
-- opening the same link again (a replay, a mail scanner) notes nothing.
INSERT INTO survey_answer_changes (customer_id, survey, answer, changed_at)
SELECT $1, $2, $3::text, $4
WHERE $3::text IS DISTINCT FROM (
    SELECT c.answer FROM survey_answer_changes c
    WHERE c.customer_id = $1 AND c.survey = $2
    ORDER BY c.id DESC LIMIT 1);

-- name: set-survey-text
UPDATE survey_answers SET free_text = $3 WHERE customer_id = $1 AND survey = $2;

-- name: customer-survey-answers
SELECT a.survey, a.answer, a.free_text, a.answered_at,
       coalesce((SELECT array_agg(ch.answer ORDER BY ch.id) FROM survey_answer_changes ch
                 WHERE ch.customer_id = a.customer_id AND ch.survey = a.survey), '{}')
FROM survey_answers a
WHERE a.customer_id = $1
ORDER BY a.answered_at;

-- name: prune-conversations
-- Conversations answered before $1 (the ledger's cutoff), their replies
-- with them (ON DELETE CASCADE), in batches of $2. An open conversation
-- is never deleted: it still holds the customer's marketing.
DELETE FROM conversations
WHERE id IN (SELECT id FROM conversations WHERE answered_at < $1 ORDER BY answered_at LIMIT $2);

-- name: prune-replies
-- Replies in no conversation (from another address than the customer's)
-- received before $1, in batches of $2.
DELETE FROM replies
WHERE id IN (SELECT id FROM replies WHERE conversation_id IS NULL AND received_at < $1 ORDER BY received_at LIMIT $2);

-- name: prune-answers
-- One-click answers given before $1 and their later changes, in batches
-- of $2 (the changes first: they are what a later click recorded).
WITH changes AS (
    DELETE FROM survey_answer_changes
    WHERE id IN (SELECT id FROM survey_answer_changes WHERE changed_at < $1 ORDER BY changed_at LIMIT $2)
)
DELETE FROM survey_answers
WHERE (customer_id, survey) IN (SELECT customer_id, survey FROM survey_answers WHERE answered_at < $1 ORDER BY answered_at LIMIT $2);
