-- migrate: no-transaction
--
-- lojal report journeys counts a period's entrants per journey and group
-- and their goals (queries/journeys.sql, journey-entrants) from this index
-- alone. Built CONCURRENTLY: journey_runs is written on every run start
-- and end.
CREATE INDEX CONCURRENTLY IF NOT EXISTS journey_runs_report ON journey_runs (started_at) INCLUDE (journey_id, holdout, outcome);
