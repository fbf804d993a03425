-- migrate: no-transaction
--
-- The retention job deletes engagement signals past the ledger's retention
-- (queries/engagement.sql, prune-engagements), oldest first, in batches.
-- Built CONCURRENTLY: engagements are written by every tracked-link click.
CREATE INDEX CONCURRENTLY IF NOT EXISTS engagements_at ON engagements (at);
