-- The API accepts events into the events table, which doubles as an
-- outbox: a single dispatcher (elected with an advisory lock) starts and
-- signals journeys from it in order, so accepting an event never waits on
-- Temporal and nothing accepted is lost if Temporal is down.
ALTER TABLE events ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE INDEX events_pending ON events (seq) WHERE dispatched_at IS NULL;
ALTER TABLE events ADD COLUMN dispatch_error text NOT NULL DEFAULT '';

CREATE INDEX customers_timezone ON customers (timezone, id);

-- API bearer tokens, stored as SHA-256 hashes: a leaked table grants
-- nothing.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Published journeys directories. The newest row is in force; workers and
-- the API pick it up without restarting. Runs in flight keep the version
-- they started with (it travels in their workflow input).
CREATE TABLE journey_deployments (
    id          bigserial PRIMARY KEY,
    hash        text NOT NULL,
    files       jsonb NOT NULL,
    summary     text NOT NULL DEFAULT '',
    deployed_by text NOT NULL DEFAULT '',
    deployed_at timestamptz NOT NULL DEFAULT now()
);
