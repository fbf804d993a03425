-- Every firing of a scheduled journey, enrolled or skipped with the
-- reason: the scheduler computes each firing from the last one, so no
-- zone is skipped silently; a firing later than the scheduler's maximum
-- lateness (after an outage) is recorded here as skipped instead of going
-- out hours late.
CREATE TABLE schedule_firings (
    journey_id  text NOT NULL,
    fire_at     timestamptz NOT NULL,
    zones       text[] NOT NULL,
    status      text NOT NULL CHECK (status IN ('enrolled', 'skipped')),
    reason      text NOT NULL DEFAULT '',
    scanned     int NOT NULL DEFAULT 0,
    enrolled    int NOT NULL DEFAULT 0,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, fire_at)
);
