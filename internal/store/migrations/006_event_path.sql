-- Events are routed to journeys in the request path by whichever API
-- replica accepted them; a sweeper (a Temporal schedule, so exactly one
-- runs) routes what a replica left behind when it died or hung, and retries
-- what failed with a backoff per event, never holding up other customers.
--
-- lane keeps bulk work (enrolment events of scheduled journeys) apart from
-- live events, so a million-customer sweep never delays a live event.
ALTER TABLE events ADD COLUMN lane text NOT NULL DEFAULT 'live' CHECK (lane IN ('live', 'bulk'));
ALTER TABLE events ADD COLUMN attempts int NOT NULL DEFAULT 0;
-- When the sweeper may try the event (again); also a lease while it does.
ALTER TABLE events ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
-- Given up on after too many attempts: the error is kept once (truncated)
-- in dispatch_error; `lojal events retry|drop` decide what happens next.
ALTER TABLE events ADD COLUMN dead_at timestamptz;
DROP INDEX events_pending;
CREATE INDEX events_due ON events (lane, next_attempt_at) WHERE dispatched_at IS NULL AND dead_at IS NULL;
-- A customer's events keep their order: the sweeper takes only a customer's
-- oldest undispatched event of a lane.
CREATE INDEX events_undispatched ON events (customer_id, lane, seq) WHERE dispatched_at IS NULL AND dead_at IS NULL;
CREATE INDEX events_dead ON events (dead_at) WHERE dead_at IS NOT NULL;

-- What routing did with an event, per journey it concerns: started or
-- signalled a run, skipped it (and why), or parked it because its run did
-- not exist yet (an event that arrived before the one that starts the run).
-- A parked event is delivered when the run starts, or recorded as unmatched
-- with the reason once park_until passes.
CREATE TABLE event_routes (
    event_id    text NOT NULL,
    journey_id  text NOT NULL,
    workflow_id text NOT NULL DEFAULT '',
    action      text NOT NULL CHECK (action IN ('started', 'signalled', 'skipped', 'parked', 'unmatched', 'requeued')),
    reason      text NOT NULL DEFAULT '',
    park_until  timestamptz,
    routed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, journey_id)
);
CREATE INDEX event_routes_parked ON event_routes (workflow_id) WHERE action = 'parked';
CREATE INDEX event_routes_park_until ON event_routes (park_until) WHERE action = 'parked';
CREATE INDEX event_routes_requeued ON event_routes (routed_at) WHERE action = 'requeued';

-- journey_runs learns which Temporal run chain it is (the first run id), so
-- a row can be checked against what Temporal knows: a run that failed or
-- was terminated without recording its end is closed by the reconciler.
ALTER TABLE journey_runs ADD COLUMN run_id text NOT NULL DEFAULT '';
ALTER TABLE journey_runs ADD COLUMN checked_at timestamptz;
CREATE INDEX journey_runs_open ON journey_runs (checked_at NULLS FIRST, id) WHERE ended_at IS NULL;
CREATE INDEX journey_runs_workflow ON journey_runs (workflow_id, started_at DESC);
CREATE INDEX journey_runs_started ON journey_runs (started_at) WHERE ended_at IS NULL;
