-- name: ledger-by-key
SELECT decision, reason, status, channel, coalesce(defer_until, 'epoch'), detail
FROM contact_ledger
WHERE idempotency_key = $1;

-- name: contact-window
-- The contacts that count against caps: sent, or reserved and not expired.
SELECT contacted_at, channel, purpose, request_key, priority = 'critical'
FROM contact_ledger
WHERE customer_id = $1
  AND status IN ('reserved', 'sent')
  AND contacted_at > $2
  AND (status = 'sent' OR expires_at > $3)
ORDER BY contacted_at DESC;

-- name: waiting-for-customer
SELECT request_key, priority, since, due
FROM waiting_messages
WHERE customer_id = $1;

-- name: insert-decision
INSERT INTO contact_ledger (
    idempotency_key, request_key, customer_id, workflow_id, journey_id, journey_version, step_id,
    template, channel, topic, purpose, priority, decision, reason, detail, status,
    decided_at, defer_until, contacted_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20);

-- name: upsert-waiting
INSERT INTO waiting_messages (request_key, customer_id, priority, since, due)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (request_key) DO UPDATE SET priority = EXCLUDED.priority, due = EXCLUDED.due;

-- name: delete-waiting
DELETE FROM waiting_messages WHERE request_key = $1;

-- name: delivery-by-key
-- What the send step needs about a reservation.
SELECT l.status, l.customer_id, l.journey_id, l.step_id, l.template, l.channel, l.topic,
       l.expires_at, l.message_id, l.workflow_id
FROM contact_ledger l
WHERE l.idempotency_key = $1;

-- name: mark-sending
-- Records the address and message id before the send, so a retry after a
-- crash knows an attempt was made and reuses the same Message-ID.
UPDATE contact_ledger
SET message_id = $2, address = $3, locale = $4, subject = $5
WHERE idempotency_key = $1 AND status = 'reserved';

-- name: mark-sent
UPDATE contact_ledger
SET status = 'sent', sent_at = $2, contacted_at = $2, error = ''
WHERE idempotency_key = $1 AND status = 'reserved';

-- name: mark-failed
-- Releases the reservation: a message that was not sent must not hold a
-- slot under the customer's caps.
UPDATE contact_ledger
SET status = $2, error = $3
WHERE idempotency_key = $1 AND status = 'reserved';

-- name: customer-history
SELECT id, decided_at, journey_id, journey_version, step_id, template, channel, topic, purpose, priority,
       decision, reason, detail, status, defer_until, sent_at, address, locale, subject, error
FROM contact_ledger
WHERE customer_id = $1
ORDER BY id;

-- name: recent-sent
SELECT l.customer_id, l.journey_id, l.step_id, l.channel, l.sent_at, l.subject, l.address, l.locale
FROM contact_ledger l
WHERE l.status = 'sent' AND l.sent_at >= $1
ORDER BY l.sent_at, l.id;

-- name: recent-decisions
SELECT l.customer_id, l.journey_id, l.step_id, l.channel, l.decision, l.reason, l.decided_at, l.defer_until, l.status
FROM contact_ledger l
WHERE l.decided_at >= $1
ORDER BY l.decided_at, l.id;

-- name: pressure-per-week
-- How many customers got n messages in a week, for each n >= 1.
SELECT n, count(*) FROM (
    SELECT customer_id, date_trunc('week', sent_at) AS week, count(*) AS n
    FROM contact_ledger
    WHERE status = 'sent' AND sent_at >= $1 AND sent_at < $2
    GROUP BY 1, 2
) per_week
GROUP BY n
ORDER BY n;

-- name: held-by-reason
SELECT decision, reason, count(*)
FROM contact_ledger
WHERE decision <> 'allow' AND decided_at >= $1 AND decided_at < $2
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2;

-- name: count-customers
SELECT count(*) FROM customers;

-- name: unmark-sent
-- The server refused the message after it was recorded as sent (at the
-- end of DATA): back to reserved, so a retry sends it.
UPDATE contact_ledger
SET status = 'reserved', sent_at = NULL, contacted_at = decided_at
WHERE idempotency_key = $1 AND status = 'sent';
