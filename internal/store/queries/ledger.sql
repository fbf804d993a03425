-- name: ledger-by-key
-- This ask's decision, if it was taken before. An ask is decided after its
-- message was first asked, so $2 (the first ask, less a day for clocks
-- that disagree) keeps the search to the months since. The two constant
-- month bounds (see monthBounds) let Postgres plan, open and lock only
-- those months.
SELECT decision, reason, status, channel, coalesce(defer_until, 'epoch'), detail
FROM contact_ledger
WHERE idempotency_key = $1 AND decided_at >= $2
  AND decided_at >= /*months_from*/'-infinity'::timestamptz AND decided_at < /*months_to*/'infinity'::timestamptz;

-- name: decide-timeouts
-- Bounds, for this transaction only, how long a decision waits for the
-- customer's lock ($1), for each round trip ($2), and between its round
-- trips before Postgres ends it and frees the lock ($3).
SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
       set_config('idle_in_transaction_session_timeout', $3, true);

-- name: contact-window
-- The contacts that count against caps: sent, possibly delivered
-- (uncertain), being sent, or reserved and not expired. A live row of the
-- message being decided is how a later ask finds it again. A message is
-- contacted within ContactSlack of its decision, so decisions since $4
-- (the window's start less that) are all there is to read: the index on
-- (customer_id, decided_at) finds them in the months they are in, and
-- status and contacted_at, which change as a message is sent and are
-- indexed nowhere, are checked on those few rows. The two constant month
-- bounds (see monthBounds) let Postgres plan, open and lock only the one
-- or two months that can hold them.
SELECT contacted_at, channel, purpose, request_key, priority = 'critical', idempotency_key, reason
FROM contact_ledger
WHERE customer_id = $1
  AND decided_at > $4
  AND decided_at >= /*months_from*/'-infinity'::timestamptz AND decided_at < /*months_to*/'infinity'::timestamptz
  AND status IN ('reserved', 'sending', 'uncertain', 'sent')
  AND contacted_at > $2
  AND (status <> 'reserved' OR expires_at > $3)
ORDER BY contacted_at DESC;

-- name: waiting-for-customer
-- The customer's waiting messages, but for those of a run that has ended
-- (a run terminated while its decision was under way may write its
-- waiting message after close-run gave its places up).
-- Written as an OR so that the probe of journey_runs runs only for rows
-- that name a run, one index lookup each.
SELECT w.request_key, w.priority, w.since, w.due, w.reason
FROM waiting_messages w
WHERE w.customer_id = $1
  AND (w.run_id = '' OR NOT EXISTS (
      SELECT 1 FROM journey_runs r
      WHERE r.workflow_id = w.workflow_id AND r.run_id = w.run_id AND r.ended_at IS NOT NULL));

-- name: insert-decision
INSERT INTO contact_ledger (
    idempotency_key, request_key, customer_id, workflow_id, journey_id, journey_version, step_id,
    template, channel, topic, purpose, priority, decision, reason, detail, status,
    decided_at, defer_until, contacted_at, expires_at, message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21);

-- name: upsert-waiting
INSERT INTO waiting_messages (request_key, customer_id, priority, since, due, workflow_id, run_id, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (request_key) DO UPDATE SET priority = EXCLUDED.priority, due = EXCLUDED.due, reason = EXCLUDED.reason;

-- name: delete-waiting
DELETE FROM waiting_messages WHERE request_key = $1;

-- name: delivery-by-key
-- What the send step needs about a reservation.
SELECT l.status, l.customer_id, l.journey_id, l.step_id, l.template, l.channel, l.topic,
       l.expires_at, l.message_id, l.workflow_id, l.send_attempt, l.error
FROM contact_ledger l
WHERE l.idempotency_key = $1 AND l.decided_at BETWEEN $2 AND $3;

-- name: begin-send
-- Starts an attempt to send: records what is about to go out (a retry
-- reuses the Message-ID) and takes the next attempt number, which fences
-- off any earlier attempt still running. The Message-ID is the one the
-- decision wrote (the same value), so this changes no indexed column and
-- is a HOT update.
UPDATE contact_ledger
SET status = 'sending', send_attempt = send_attempt + 1,
    message_id = $2, address = $3, locale = $4, subject = $5, error = ''
WHERE idempotency_key = $1 AND decided_at BETWEEN $6 AND $7 AND status IN ('reserved', 'sending')
RETURNING send_attempt;

-- name: mark-uncertain
-- The whole message is handed over (or about to be): from here the server
-- may have it. Also updates the reason of a message already uncertain.
UPDATE contact_ledger
SET status = 'uncertain', error = $3, contacted_at = $4
WHERE idempotency_key = $1 AND decided_at BETWEEN $5 AND $6 AND send_attempt = $2 AND status IN ('sending', 'uncertain');

-- name: mark-sent
UPDATE contact_ledger
SET status = 'sent', sent_at = $3, contacted_at = $3, error = ''
WHERE idempotency_key = $1 AND decided_at BETWEEN $4 AND $5 AND send_attempt = $2 AND status IN ('sending', 'uncertain');

-- name: mark-refused
-- The server answered the end of the message with a refusal, which proves
-- it did not take it: back to reserved (4xx, to be retried) or failed (5xx).
UPDATE contact_ledger
SET status = $3, error = $4, contacted_at = decided_at
WHERE idempotency_key = $1 AND decided_at BETWEEN $5 AND $6 AND send_attempt = $2 AND status IN ('sending', 'uncertain')
  AND $3 IN ('reserved', 'failed');

-- name: mark-failed
-- Releases a message that was not handed over: it must not hold a slot
-- under the customer's caps.
UPDATE contact_ledger
SET status = $2, error = $3
WHERE idempotency_key = $1 AND decided_at BETWEEN $4 AND $5 AND status IN ('reserved', 'sending');

-- name: ledger-status
SELECT status FROM contact_ledger WHERE idempotency_key = $1 AND decided_at BETWEEN $2 AND $3;

-- name: push-deliveries
SELECT subscription_id, status, error, retry_after
FROM push_deliveries
WHERE idempotency_key = $1;

-- name: record-push
-- One subscription's state. A final state (sent, uncertain, failed, gone)
-- is never changed again; written again as it is (an answer whose write
-- landed although its reply was lost), it lands.
INSERT INTO push_deliveries AS p (idempotency_key, subscription_id, status, error, retry_after, attempts)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $3 = 'sending' THEN 1 ELSE 0 END)
ON CONFLICT (idempotency_key, subscription_id) DO UPDATE
SET status = EXCLUDED.status, error = EXCLUDED.error, retry_after = EXCLUDED.retry_after,
    attempts = p.attempts + EXCLUDED.attempts, updated_at = now()
WHERE p.status IN ('sending', 'retry') OR (p.status = EXCLUDED.status AND p.error = EXCLUDED.error);

-- name: hold-send
-- Locks the row of a message an attempt is handing over, fenced by the
-- attempt, in the transaction of a push request's record: the next
-- attempt's begin-send waits for that transaction, so it never reads the
-- message's requests while a record that left with its request is on its
-- way (a push record touches no ledger row of its own).
SELECT 1 FROM contact_ledger
WHERE idempotency_key = $1 AND decided_at BETWEEN $3 AND $4 AND send_attempt = $2 AND status = 'sending'
FOR NO KEY UPDATE;

-- name: orphaned-push-sends
-- Requests an attempt recorded as under way and never finished: the
-- attempt died, and the push service may have the message.
UPDATE push_deliveries
SET status = 'uncertain', error = $2, updated_at = now()
WHERE idempotency_key = $1 AND status = 'sending';

-- name: customer-history
SELECT id, decided_at, journey_id, journey_version, step_id, template, channel, topic, purpose, priority,
       decision, reason, detail, status, defer_until, sent_at, address, locale, subject, error
FROM contact_ledger
WHERE customer_id = $1
ORDER BY decided_at, id;

-- name: recent-sent
-- Messages sent, and those the server may have (uncertain), which count
-- as sent.
SELECT l.customer_id, l.journey_id, l.step_id, l.channel, l.contacted_at, l.subject, l.address, l.locale, l.status,
       coalesce(l.message_id, '')
FROM contact_ledger l
WHERE l.decided_at >= $2 AND l.status IN ('sent', 'uncertain') AND l.contacted_at >= $1
ORDER BY l.contacted_at, l.id;

-- name: recent-decisions
SELECT l.customer_id, l.journey_id, l.step_id, l.channel, l.decision, l.reason, l.decided_at, l.defer_until, l.status
FROM contact_ledger l
WHERE l.decided_at >= $1
ORDER BY l.decided_at, l.id;

-- name: pressure-per-week
-- How many customers got n messages in a week, for each n >= 1. $3 is
-- $1 less ContactSlack: only the months of decisions since then are read.
SELECT n, count(*) FROM (
    SELECT customer_id, date_trunc('week', contacted_at) AS week, count(*) AS n
    FROM contact_ledger
    WHERE decided_at >= $3 AND decided_at < $2
      AND status IN ('sent', 'uncertain') AND contacted_at >= $1 AND contacted_at < $2
    GROUP BY 1, 2
) per_week
GROUP BY n
ORDER BY n;

-- name: spam-per-day
-- Emails delivered (sent, or uncertain: the customer may have them) and
-- complaints received, per UTC day from $1 to $2, for days with either
-- ($3: see pressure-per-week).
WITH delivered AS (
    SELECT date_trunc('day', contacted_at AT TIME ZONE 'UTC') AS day, count(*) AS n
    FROM contact_ledger
    WHERE decided_at >= $3 AND decided_at < $2
      AND channel = 'email' AND status IN ('sent', 'uncertain') AND contacted_at >= $1 AND contacted_at < $2
    GROUP BY 1
), complained AS (
    SELECT date_trunc('day', received_at AT TIME ZONE 'UTC') AS day, count(*) AS n
    FROM complaints
    WHERE channel = 'email' AND received_at >= $1 AND received_at < $2
    GROUP BY 1
)
SELECT day, coalesce(delivered.n, 0), coalesce(complained.n, 0)
FROM delivered FULL JOIN complained USING (day)
ORDER BY day;

-- name: decisions-by-caps
-- The decisions taken from $1 to $2, by decision, reason and the caps
-- that applied (h: how many times adaptive pressure halved them, recorded
-- in the facts only when it did): grouping 1 counts decisions; grouping
-- 12 counts the customers with a decision at each level (only those at
-- a lowered one are named); grouping 14 the customers with any. The pass
-- over the ledger is a plain GROUP BY, which Postgres may split across
-- parallel workers; the grouping sets work on its few rows.
SELECT grouping, coalesce(decision, ''), coalesce(reason, ''), coalesce(h, 0),
       CASE WHEN grouping = 1 THEN sum(n) ELSE count(lowered) END
FROM (
    SELECT GROUPING(decision, reason, h, lowered) AS grouping, decision, reason, h, lowered, sum(n) AS n
    FROM (
        SELECT decision, reason, coalesce((detail->>'cap_halvings')::int, 0) AS h,
               CASE WHEN detail ? 'cap_halvings' THEN customer_id END AS lowered, count(*) AS n
        FROM contact_ledger
        WHERE decided_at >= $1 AND decided_at < $2
        GROUP BY 1, 2, 3, 4
    ) d
    GROUP BY GROUPING SETS ((decision, reason, h), (h, lowered), (lowered))
) g
GROUP BY 1, 2, 3, 4;

-- name: spam-since
-- Emails delivered and complaints received since $1 ($2: $1 less
-- spamSlack).
SELECT (SELECT count(*) FROM contact_ledger
        WHERE decided_at >= $2 AND channel = 'email' AND status IN ('sent', 'uncertain') AND contacted_at >= $1),
       (SELECT count(*) FROM complaints WHERE channel = 'email' AND received_at >= $1);

-- name: count-customers
SELECT count(*) FROM customers;

-- name: send-attempt
-- Whether an attempt still owns a message it is sending, and until when
-- its reservation holds (the checks just before the final "." of an
-- email), in the months $2..$3.
SELECT status, send_attempt, expires_at FROM contact_ledger WHERE idempotency_key = $1 AND decided_at BETWEEN $2 AND $3;
