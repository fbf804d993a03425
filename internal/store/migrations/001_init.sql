-- lojal's schema. Every table a message touches on its way out: who the
-- customer is and what they agreed to, what happened to them, which
-- journeys they are in, and every decision taken about contacting them.

CREATE TABLE customers (
    id                text PRIMARY KEY,
    email             text NOT NULL DEFAULT '',
    locale            text NOT NULL DEFAULT 'en',
    timezone          text NOT NULL DEFAULT '',
    preferred_channel text NOT NULL DEFAULT '' CHECK (preferred_channel IN ('', 'email', 'push')),
    -- Attributes declared in journeys/schema.yaml, validated on the way in.
    attributes        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    topics_opted_out  text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consents (
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('email', 'push')),
    granted     boolean NOT NULL,
    source      text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, channel)
);

-- Addresses nothing may be sent to again: hard bounces, complaints and
-- one-click unsubscribes. Keyed by address, not customer, because a bounced
-- address stays bounced whoever it belongs to.
CREATE TABLE suppressions (
    channel    text NOT NULL CHECK (channel IN ('email', 'push')),
    address    text NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribed')),
    detail     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, address)
);

CREATE TABLE push_subscriptions (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('webpush', 'http')),
    endpoint    text NOT NULL,
    p256dh      text NOT NULL DEFAULT '',
    auth        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, endpoint)
);

CREATE TABLE events (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    customer_id   text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    occurred_at   timestamptz NOT NULL,
    data          jsonb NOT NULL DEFAULT '{}',
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- Set once every journey the event concerns has been started or
    -- signalled; a redelivered event that is already dispatched is a no-op.
    dispatched_at timestamptz
);
CREATE INDEX events_customer ON events (customer_id, occurred_at);

-- One row per journey run started, for reentry rules and reports.
CREATE TABLE journey_runs (
    id               bigserial PRIMARY KEY,
    workflow_id      text NOT NULL,
    journey_id       text NOT NULL,
    version          text NOT NULL,
    customer_id      text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    run_key          text NOT NULL DEFAULT '',
    trigger_event_id text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    outcome          text,
    UNIQUE (journey_id, trigger_event_id)
);
CREATE INDEX journey_runs_customer ON journey_runs (journey_id, customer_id, run_key, started_at DESC);

-- The contact ledger: one row per policy decision about one message. A
-- message that is deferred twice and then sent has three rows, linked by
-- request_key. Rows in status reserved or sent count against caps.
CREATE TABLE contact_ledger (
    id              bigserial PRIMARY KEY,
    -- request_key plus the ask number: the same decision retried by
    -- Temporal finds its row instead of deciding again.
    idempotency_key text NOT NULL UNIQUE,
    request_key     text NOT NULL,
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
    decision        text NOT NULL CHECK (decision IN ('allow', 'defer', 'suppress')),
    reason          text NOT NULL,
    -- The inputs that decided: which cap and count, which quiet hours.
    detail          jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN ('reserved', 'sent', 'released', 'deferred', 'suppressed', 'failed')),
    decided_at      timestamptz NOT NULL,
    defer_until     timestamptz,
    -- When the message reached (or, while reserved, is about to reach) the
    -- customer; caps count this.
    contacted_at    timestamptz,
    -- A reservation not sent by then no longer counts and may not be sent.
    expires_at      timestamptz,
    sent_at         timestamptz,
    message_id      text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT ''
);
CREATE INDEX contact_ledger_window ON contact_ledger (customer_id, contacted_at DESC)
    WHERE status IN ('reserved', 'sent');
CREATE INDEX contact_ledger_customer ON contact_ledger (customer_id, id);
CREATE INDEX contact_ledger_decided ON contact_ledger (decided_at);

-- Messages deferred by the policy that will ask again; lower-priority
-- messages step aside for them.
CREATE TABLE waiting_messages (
    request_key text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    priority    int NOT NULL,
    since       timestamptz NOT NULL,
    due         timestamptz NOT NULL
);
CREATE INDEX waiting_messages_customer ON waiting_messages (customer_id);
