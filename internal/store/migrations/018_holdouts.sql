-- Holdouts (docs/holdouts.md): a journey with `holdout: N%` keeps a
-- deterministic share of its entrants out of its sends, so its goal rate
-- can be compared with and without it.
--
-- journey_runs.holdout says which group a run is in: true held out, false
-- treated, NULL for runs of journeys without a holdout (and runs started
-- before holdouts existed), which count as treated.
ALTER TABLE journey_runs ADD COLUMN holdout boolean;

-- What a held-out run would have sent: one row per message (run, step,
-- visit), never a ledger row. It is its own table so that nothing that
-- counts contact (caps, the minimum gap, adaptive pressure, the pressure
-- and spam reports) and nothing that delivers can ever see it.
CREATE TABLE holdout_messages (
    id              bigserial PRIMARY KEY,
    -- The ledger's request key for the same message had it been asked
    -- about: workflow@first-run/step#visit. A retried activity finds it.
    request_key     text NOT NULL UNIQUE,
    customer_id     text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    workflow_id     text NOT NULL,
    journey_id      text NOT NULL,
    journey_version text NOT NULL DEFAULT '',
    step_id         text NOT NULL,
    template        text NOT NULL DEFAULT '',
    channel         text NOT NULL,
    topic           text NOT NULL DEFAULT '',
    purpose         text NOT NULL DEFAULT '',
    priority        text NOT NULL,
    at              timestamptz NOT NULL
);
CREATE INDEX holdout_messages_at ON holdout_messages (at) INCLUDE (journey_id);
CREATE INDEX holdout_messages_customer ON holdout_messages (customer_id, at);
