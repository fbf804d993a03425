-- name: upsert-customer
-- Returns the attributes from before the update, so segment-entry journeys
-- can tell whether the customer just entered their audience.
WITH old AS (
    SELECT attributes, locale, timezone, email FROM customers WHERE id = $1
)
-- Consent and topic opt-outs are entries of the consent ledger, written
-- beside it (consent-entries, insert-consent-entry).
INSERT INTO customers AS c (id, email, locale, timezone, preferred_channel, attributes)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    email = EXCLUDED.email,
    locale = EXCLUDED.locale,
    timezone = EXCLUDED.timezone,
    preferred_channel = EXCLUDED.preferred_channel,
    attributes = EXCLUDED.attributes,
    updated_at = now()
RETURNING (SELECT attributes FROM old), (SELECT email FROM old), (SELECT locale FROM old), (SELECT timezone FROM old);

-- name: get-customer
-- The customer with their consent ledger, oldest entry first; consent and
-- topic opt-outs are derived from it (policy.ChannelConsent, TopicsOptedOut).
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes,
       consent_ledger_json(c.id)
FROM customers c
WHERE c.id = $1;

-- name: get-customer-to-send
-- get-customer, and the suppression of the customer's email address (its
-- reason, '' when there is none): a message allowed earlier is not sent
-- to an address that complained or hard-bounced since.
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes,
       consent_ledger_json(c.id),
       coalesce((SELECT reason FROM suppressions WHERE channel = 'email' AND address = lower(c.email)), '')
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
SELECT c.id, c.email, c.locale, c.timezone, c.preferred_channel, c.attributes,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
           'id', l.id, 'channel', l.channel, 'topic', l.topic, 'action', l.action, 'basis', l.basis,
           'wording', l.wording, 'wording_version', l.wording_version, 'locale', l.locale, 'at', l.at,
           'source', l.source, 'actor', l.actor, 'evidence', l.evidence, 'sale_id', l.sale_id,
           'sale_at', l.sale_at, 'product_group', l.product_group, 'recorded_at', l.recorded_at) ORDER BY l.at, l.id)
         FROM consent_ledger l WHERE l.customer_id = c.id), '[]'),
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

-- name: upsert-push-subscription
INSERT INTO push_subscriptions (customer_id, kind, endpoint, p256dh, auth)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (customer_id, endpoint) DO UPDATE SET kind = EXCLUDED.kind, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth
RETURNING id;

-- name: push-subscriptions
SELECT id, kind, endpoint, p256dh, auth FROM push_subscriptions WHERE customer_id = $1 ORDER BY id;

-- name: delete-push-subscription
DELETE FROM push_subscriptions WHERE id = $1;
