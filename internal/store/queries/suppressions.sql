-- name: sent-by-key
-- The message with this idempotency key (X-Lojal-Key), if lojal began
-- sending it (only then has it an address); the caller checks the
-- address.
SELECT id, customer_id, message_id, address
FROM contact_ledger
WHERE idempotency_key = $1 AND address <> '';

-- name: sent-by-message-id
-- The message with this Message-ID, if lojal began sending it (the
-- decision records the Message-ID, the send the address). message_id <>
-- '' lets a generic plan use the partial index contact_ledger_message_id.
SELECT id, customer_id, message_id, address
FROM contact_ledger
WHERE message_id = $1 AND message_id <> '' AND address <> ''
ORDER BY id
LIMIT 10;

-- name: message-by-id
-- The email lojal sent with this Message-ID: an unsubscribe by email names
-- it. Uncertain counts as sent (the customer may have it).
SELECT id, customer_id, message_id, address, topic, contacted_at
FROM contact_ledger
WHERE message_id = $1 AND message_id <> '' AND channel = 'email' AND status IN ('sent', 'uncertain')
ORDER BY id
LIMIT 1;

-- name: list-suppressions
-- Keyset pagination by (channel, address); $1 filters to one address.
SELECT channel, address, reason, detail, created_at
FROM suppressions
WHERE ($1 = '' OR address = lower($1)) AND (channel, address) > ($2, $3)
ORDER BY channel, address
LIMIT $4;

-- name: lift-suppression
-- Deletes the suppression and records who lifted it and why, in one
-- statement: there is no lift without its audit row.
WITH lifted AS (
    DELETE FROM suppressions WHERE channel = $1 AND address = lower($2)
    RETURNING channel, address, reason, detail, created_at
)
INSERT INTO suppression_lifts (channel, address, reason, detail, suppressed_at, lifted_by, why)
SELECT channel, address, reason, detail, created_at, $3, $4 FROM lifted
RETURNING id, channel, address, reason, detail, suppressed_at, lifted_by, why, lifted_at;

-- name: list-suppression-lifts
SELECT id, channel, address, reason, detail, suppressed_at, lifted_by, why, lifted_at
FROM suppression_lifts
WHERE ($1 = '' OR address = lower($1))
ORDER BY id DESC
LIMIT $2;
