-- migrate: no-transaction
--
-- The policy asks for the customer's last goal on every decision
-- (queries/engagement.sql, last-engaged). Built CONCURRENTLY: journey_runs
-- is written on every run start and end.
CREATE INDEX CONCURRENTLY IF NOT EXISTS journey_runs_goal ON journey_runs (customer_id, ended_at DESC) WHERE outcome = 'goal';
