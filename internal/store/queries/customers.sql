-- name: upsert-customer
-- Returns the attributes from before the update, so segment-entry journeys
-- can tell whether the customer just entered their audience.
WITH old AS (
    SELECT attributes, locale, timezone, email FROM customers WHERE id = $1
)
-- A NULL $7 (topics_opted_out left out) keeps the customer's opt-outs: a
-- CRM sync that does not know about them must not undo an unsubscribe.
INSERT INTO customers AS c (id, email, locale, timezone, preferred_channel, attributes, topics_opted_out)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::text[], '{}'))
ON CONFLICT (id) DO UPDATE SET
    email = EXCLUDED.email,
    locale = EXCLUDED.locale,
    timezone = EXCLUDED.timezone,
    preferred_channel = EXCLUDED.preferred_channel,
    attributes = EXCLUDED.attributes,
    topics_opted_out = CASE WHEN $7::text[] IS NULL THEN c.topics_opted_out ELSE EXCLUDED.topics_opted_out END,
    updated_at = now()
RETURNING (SELECT attributes FROM old), (SELECT email FROM old), (SELECT locale FROM old), (SELECT timezone FROM old);

-- name: upsert-consent
INSERT INTO consents (customer_id, channel, granted, source, recorded_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (customer_id, channel) DO UPDATE SET
    granted = EXCLUDED.granted, source = EXCLUDED.source, recorded_at = now();

-- name: get-customer
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes, c.topics_opted_out,
       coalesce((SELECT jsonb_object_agg(channel, granted) FROM consents WHERE customer_id = c.id), '{}')
FROM customers c
WHERE c.id = $1;

-- name: lock-customer
-- Serialises every decision about one customer: whichever journey asks
-- second waits here until the first has reserved its slot and committed.
-- A transaction-scoped advisory lock does it without writing to the
-- customer's row (a row lock would, on the hot path of every message); a
-- hash collision only makes two customers wait for each other.
SELECT pg_advisory_xact_lock(hashtextextended('lojal-customer:' || $1::text, 0));

-- name: relationship
-- The customer as the policy sees them, read after lock-customer.
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes, c.topics_opted_out,
       coalesce((SELECT jsonb_object_agg(channel, granted) FROM consents WHERE customer_id = c.id), '{}'),
       coalesce((SELECT reason FROM suppressions WHERE channel = 'email' AND address = lower(c.email)), ''),
       (SELECT count(*) FROM push_subscriptions WHERE customer_id = c.id)
FROM customers c
WHERE c.id = $1;

-- name: suppress-address
INSERT INTO suppressions (channel, address, reason, detail)
VALUES ($1, lower($2), $3, $4)
ON CONFLICT (channel, address) DO UPDATE SET
    reason = CASE WHEN suppressions.reason = 'complaint' THEN suppressions.reason ELSE EXCLUDED.reason END,
    detail = EXCLUDED.detail;

-- name: record-complaint
-- A complaint counts towards the spam rate (once per address and message)
-- and suppresses the address, in one statement.
WITH counted AS (
    INSERT INTO complaints (channel, address, message_id, detail)
    VALUES ($1, lower($2), $3, $4)
    ON CONFLICT (channel, address, message_id) DO NOTHING
)
INSERT INTO suppressions (channel, address, reason, detail)
VALUES ($1, lower($2), 'complaint', $4)
ON CONFLICT (channel, address) DO UPDATE SET reason = 'complaint', detail = EXCLUDED.detail;

-- name: opt-out-topic
UPDATE customers
SET topics_opted_out = array(SELECT DISTINCT unnest(topics_opted_out || $2::text[]) ORDER BY 1), updated_at = now()
WHERE id = $1;

-- name: upsert-push-subscription
INSERT INTO push_subscriptions (customer_id, kind, endpoint, p256dh, auth)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (customer_id, endpoint) DO UPDATE SET kind = EXCLUDED.kind, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
RETURNING id;

-- name: push-subscriptions
SELECT id, kind, endpoint, p256dh, auth FROM push_subscriptions WHERE customer_id = $1 ORDER BY id;

-- name: delete-push-subscription
DELETE FROM push_subscriptions WHERE id = $1;

-- name: set-topics-opted-out
UPDATE customers SET topics_opted_out = $2, updated_at = now() WHERE id = $1;
