-- migrate: no-transaction
--
-- A waiting message (deferred, to ask again at its due time) holds a place
-- in its customer's line. It names the run chain that will ask again
-- (workflow id and first run id), so that a run that ended, however it
-- ended, gives its places up: close-run and finish-run delete them, and
-- waiting-for-customer ignores one a terminated run wrote while it was
-- being closed. Rows from before have no run and keep the old rule (a
-- place lapses ten minutes after its due time). Adding a column with a
-- constant default rewrites nothing; the index is built CONCURRENTLY as
-- decisions write the table.
ALTER TABLE waiting_messages ADD COLUMN IF NOT EXISTS workflow_id text NOT NULL DEFAULT '';
ALTER TABLE waiting_messages ADD COLUMN IF NOT EXISTS run_id text NOT NULL DEFAULT '';
CREATE INDEX CONCURRENTLY IF NOT EXISTS waiting_messages_run ON waiting_messages (workflow_id, run_id) WHERE run_id <> '';
