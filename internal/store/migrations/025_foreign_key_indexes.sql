-- migrate: no-transaction
--
-- Two foreign keys had no index on their referencing column, so deleting
-- a referenced row made Postgres scan the referencing table whole, once
-- per row deleted:
-- - consent_requests.entry_id (ON DELETE SET NULL): every consent entry
--   the retention job purges;
-- - replies.conversation_id (ON DELETE CASCADE): every conversation the
--   retention job deletes.
-- Both are built CONCURRENTLY (the tables take writes meanwhile) and are
-- partial: most rows name nothing.
CREATE INDEX CONCURRENTLY IF NOT EXISTS consent_requests_entry ON consent_requests (entry_id) WHERE entry_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS replies_conversation ON replies (conversation_id) WHERE conversation_id IS NOT NULL;
