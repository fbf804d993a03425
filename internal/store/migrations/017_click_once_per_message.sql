-- A click on a tracked link (/k/) is recorded once per message: the row
-- says the customer engaged with that message, and a later click on the
-- same message moves its time forward (queries/engagement.sql,
-- record-click). Which link was clicked is not recorded. Nothing produced
-- clicks before this migration, but any duplicates written by hand keep
-- only their latest.
DELETE FROM engagements e
USING engagements f
WHERE e.kind = 'click' AND f.kind = 'click'
  AND e.customer_id = f.customer_id AND e.message_key = f.message_key
  AND (e.at, e.id) < (f.at, f.id);
CREATE UNIQUE INDEX engagements_click_per_message ON engagements (customer_id, message_key) WHERE kind = 'click';
