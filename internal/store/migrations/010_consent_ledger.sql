-- The consent ledger: every grant and withdrawal a customer made, as it
-- was captured, so the company can prove what the customer agreed to,
-- when, where and in which words (GDPR art. 7(1)), and why a soft
-- opt-in message was lawful. The customer's consent is derived from the
-- entries; none is ever changed. It replaces the consents table (one
-- boolean per channel) and customers.topics_opted_out, whose contents
-- become its first entries.
--
-- No foreign key to customers: the evidence outlives a deleted customer
-- for the consent retention (docs/consent.md), longer than the contact
-- ledger is kept.
CREATE TABLE consent_ledger (
    id              bigserial PRIMARY KEY,
    customer_id     text NOT NULL,
    -- email, push, or * for every channel.
    channel         text NOT NULL CHECK (channel IN ('email', 'push', '*')),
    -- A topic, or * for marketing on the channel as a whole.
    topic           text NOT NULL CHECK (topic <> ''),
    action          text NOT NULL CHECK (action IN ('grant', 'withdraw')),
    basis           text NOT NULL CHECK (basis IN ('consent', 'soft_opt_in')),
    -- The text the customer saw, in their language, and its version.
    wording         text NOT NULL DEFAULT '',
    wording_version text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT '',
    -- When the customer acted; recorded_at is when lojal stored it.
    at              timestamptz NOT NULL,
    source          text NOT NULL CHECK (source IN ('api', 'preference_centre', 'import', 'double_opt_in', 'unsubscribe', 'migration')),
    actor           text NOT NULL DEFAULT '',
    evidence        text NOT NULL DEFAULT '',
    sale_id         text NOT NULL DEFAULT '',
    sale_at         timestamptz,
    product_group   text NOT NULL DEFAULT '',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (basis <> 'soft_opt_in' OR action <> 'grant'
           OR (sale_id <> '' AND sale_at IS NOT NULL AND product_group <> '' AND topic = '*'))
);
CREATE INDEX consent_ledger_customer ON consent_ledger (customer_id, at, id);
CREATE INDEX consent_ledger_recorded ON consent_ledger (recorded_at);

-- Append-only, enforced where every writer must pass: an UPDATE is always
-- refused, a DELETE unless the retention job says it is the one deleting
-- (SET LOCAL lojal.consent_retention = 'on').
CREATE FUNCTION consent_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('lojal.consent_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the consent ledger is append-only: % refused', TG_OP
        USING HINT = 'record a new entry (a withdrawal, a new grant) instead';
END
$$;
CREATE TRIGGER consent_ledger_append_only BEFORE UPDATE OR DELETE ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_append_only();

-- Double opt-in: a request for consent waits for the customer to confirm
-- it through a signed, expiring link; the confirmation becomes a ledger
-- entry that names the request.
CREATE TABLE consent_requests (
    id              bigserial PRIMARY KEY,
    customer_id     text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel IN ('email')),
    address         text NOT NULL,
    wording         text NOT NULL,
    wording_version text NOT NULL,
    locale          text NOT NULL DEFAULT '',
    requested_at    timestamptz NOT NULL,
    requested_by    text NOT NULL DEFAULT '',
    expires_at      timestamptz NOT NULL,
    confirmed_at    timestamptz,
    entry_id        bigint REFERENCES consent_ledger (id) ON DELETE SET NULL
);
CREATE INDEX consent_requests_customer ON consent_requests (customer_id);

-- What was known before the ledger becomes its first entries, marked as
-- migrated, with the old values as evidence. A channel without consent
-- there was either refused or never asked; counting it as a withdrawal
-- is the reading that never sends marketing the customer may have refused.
INSERT INTO consent_ledger (customer_id, channel, topic, action, basis, wording_version, at, source, actor, evidence)
SELECT customer_id, channel, '*', CASE WHEN granted THEN 'grant' ELSE 'withdraw' END, 'consent', 'before-ledger',
       recorded_at, 'migration', source,
       format('consents row before the consent ledger: %s consent %s, source %L, recorded %s',
              channel, CASE WHEN granted THEN 'granted' ELSE 'not granted' END, source, recorded_at)
FROM consents
ORDER BY recorded_at, customer_id, channel;

INSERT INTO consent_ledger (customer_id, channel, topic, action, basis, wording_version, at, source, evidence)
SELECT c.id, '*', t.topic, 'withdraw', 'consent', 'before-ledger', c.updated_at, 'migration',
       format('topics_opted_out before the consent ledger held %s (customer last updated %s)', t.topic, c.updated_at)
FROM customers c, unnest(c.topics_opted_out) AS t (topic)
ORDER BY c.updated_at, c.id, t.topic;

-- Nothing reads them any more; a binary from before the ledger that is
-- still running fails loudly instead of writing consent the ledger
-- would never see.
DROP TABLE consents;
ALTER TABLE customers DROP COLUMN topics_opted_out;
