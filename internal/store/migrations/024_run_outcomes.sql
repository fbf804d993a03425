-- migrate: no-transaction
--
-- A journey may declare an outcome (outcome: { event, within }): the
-- customer's event of that type within the window after a run began marks
-- the run (outcome_at, the first such event), whether or not it is still
-- going, and lojal report journeys counts it with the goal. The report's
-- index (019) gains the column so the entrants query still reads the index
-- alone; the new one is built CONCURRENTLY before the old one is dropped
-- (journey_runs is written on every run start and end).
ALTER TABLE journey_runs ADD COLUMN IF NOT EXISTS outcome_at timestamptz;
CREATE INDEX CONCURRENTLY IF NOT EXISTS journey_runs_report_outcomes ON journey_runs (started_at) INCLUDE (journey_id, holdout, outcome, outcome_at);
DROP INDEX CONCURRENTLY IF EXISTS journey_runs_report;
