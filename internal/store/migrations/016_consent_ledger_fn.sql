-- A customer's consent ledger as JSON, oldest entry first (the shape of
-- policy.ConsentEntry), in one place: reading a customer (get-customer),
-- their consent (consent-entries) and events accepted in the request path
-- (insert-events, which hands routing the customer it would otherwise read
-- in a round trip of its own) all read it this way.
CREATE FUNCTION consent_ledger_json(customer text) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', l.id, 'channel', l.channel, 'topic', l.topic, 'action', l.action, 'basis', l.basis,
               'wording', l.wording, 'wording_version', l.wording_version, 'locale', l.locale, 'at', l.at,
               'source', l.source, 'actor', l.actor, 'evidence', l.evidence, 'sale_id', l.sale_id,
               'sale_at', l.sale_at, 'product_group', l.product_group, 'recorded_at', l.recorded_at) ORDER BY l.at, l.id), '[]')
    FROM consent_ledger l
    WHERE l.customer_id = customer
$$;
