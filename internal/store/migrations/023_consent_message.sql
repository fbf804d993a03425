-- An unsubscribe names the message whose link the customer used (the
-- link, or the List-Unsubscribe address, carries its Message-ID), so
-- `lojal report journeys` counts it against that message's journey rather
-- than the customer's last message, and the consent evidence shows where
-- the customer acted. Entries from before, and those not made through a
-- message, have none. A column with a constant default rewrites nothing.
ALTER TABLE consent_ledger ADD COLUMN IF NOT EXISTS message_id text NOT NULL DEFAULT '';

-- The ledger as JSON (016) gains message_id, only on entries that have one.
CREATE OR REPLACE FUNCTION consent_ledger_json(customer text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', l.id, 'channel', l.channel, 'topic', l.topic, 'action', l.action, 'basis', l.basis,
               'wording', l.wording, 'wording_version', l.wording_version, 'locale', l.locale, 'at', l.at,
               'source', l.source, 'actor', l.actor, 'evidence', l.evidence, 'sale_id', l.sale_id,
               'sale_at', l.sale_at, 'product_group', l.product_group, 'recorded_at', l.recorded_at)
             || CASE WHEN l.message_id <> '' THEN jsonb_build_object('message_id', l.message_id) ELSE '{}'::jsonb END
             ORDER BY l.at, l.id), '[]')
    FROM consent_ledger l
    WHERE l.customer_id = customer
$$;
