-- name: consent-entries
-- One customer's consent ledger, oldest first, as JSON (the shape of
-- policy.ConsentEntry).
SELECT consent_ledger_json($1);

-- name: insert-consent-entry
INSERT INTO consent_ledger (customer_id, channel, topic, action, basis, wording, wording_version, locale, at,
                            source, actor, evidence, sale_id, sale_at, product_group, message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING id, recorded_at;

-- name: customer-exists
SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1);

-- name: insert-consent-request
INSERT INTO consent_requests (customer_id, channel, address, wording, wording_version, locale, requested_at, requested_by, expires_at)
SELECT $1, $2, c.email, $3, $4, $5, $6, $7, $8
FROM customers c
WHERE c.id = $1 AND c.email <> ''
RETURNING id, address;

-- name: consent-request
-- FOR UPDATE: two clicks on the same link confirm once.
SELECT id, customer_id, channel, address, wording, wording_version, locale, requested_at, requested_by,
       expires_at, confirmed_at, coalesce(entry_id, 0)
FROM consent_requests
WHERE id = $1
FOR UPDATE;

-- name: consent-requests-of
SELECT id, customer_id, channel, address, wording, wording_version, locale, requested_at, requested_by,
       expires_at, confirmed_at, coalesce(entry_id, 0)
FROM consent_requests
WHERE customer_id = $1
ORDER BY id;

-- name: confirm-consent-request
UPDATE consent_requests SET confirmed_at = $2, entry_id = $3 WHERE id = $1 AND confirmed_at IS NULL;

-- name: consent-messages
-- The messages one customer was sent, with the basis each relied on.
SELECT decided_at, coalesce(sent_at, contacted_at, decided_at), journey_id, step_id, channel, topic, status,
       coalesce(detail->>'basis', ''), coalesce(detail->>'basis_fact', ''), message_id, subject
FROM contact_ledger
WHERE customer_id = $1 AND status IN ('sent', 'uncertain')
ORDER BY decided_at, id;

-- name: messages-per-basis
-- Messages sent (or possibly delivered) between $1 and $2, by the basis
-- they relied on. Messages sent before the consent ledger have none.
SELECT coalesce(detail->>'basis', ''), channel, topic, count(*)
FROM contact_ledger
WHERE status IN ('sent', 'uncertain') AND decided_at >= $1 AND decided_at < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: allow-consent-purge
SELECT set_config('lojal.consent_retention', 'on', true);

-- name: purge-consent
-- The consent ledger's retention, longer than the contact ledger's: a
-- consent grant or topic opt-in that a later consent entry (a grant or a
-- withdrawal) of the same scope replaced before $1, and every entry of a
-- customer deleted whose last entry is older than $1. Withdrawals and
-- soft opt-ins of a customer who still exists are kept: "no opt-out
-- recorded" must stay provable. A soft opt-in replaces no consent grant:
-- journeys that need consent still rest on the grant.
DELETE FROM consent_ledger e
WHERE (e.action = 'grant' AND e.basis = 'consent' AND EXISTS (
           SELECT 1 FROM consent_ledger n
           WHERE n.customer_id = e.customer_id AND n.channel = e.channel AND n.topic = e.topic
             AND (n.basis = 'consent' OR n.action = 'withdraw')
             AND (n.at, n.id) > (e.at, e.id) AND n.at < $1))
   OR (NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.customer_id)
       AND NOT EXISTS (SELECT 1 FROM consent_ledger n WHERE n.customer_id = e.customer_id AND n.at >= $1));
