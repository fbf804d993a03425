-- migrate: no-transaction
--
-- The retention job (queries/retention.sql) deletes push deliveries and
-- schedule firings by age, oldest first; these indexes let it find them
-- without reading either table whole. Built CONCURRENTLY: push_deliveries
-- is written on every push message.
CREATE INDEX CONCURRENTLY IF NOT EXISTS push_deliveries_updated ON push_deliveries (updated_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedule_firings_recorded ON schedule_firings (recorded_at);
