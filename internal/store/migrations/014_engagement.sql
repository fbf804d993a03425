-- Engagement signals for adaptive pressure: what a customer did with a
-- message beyond receiving it. Replies, answers and journey goals are
-- already recorded (replies, survey_answers, journey_runs); this table
-- holds the rest, clicks on tracked links first. No opens: lojal sends
-- no tracking pixels.
CREATE TABLE engagements (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- message_key is the ledger idempotency key of the message engaged
    -- with, or '' when the signal names no message.
    message_key text NOT NULL DEFAULT '',
    kind        text NOT NULL CHECK (kind IN ('click', 'reply', 'answer', 'goal')),
    at          timestamptz NOT NULL,
    UNIQUE (customer_id, message_key, kind, at)
);
CREATE INDEX engagements_customer ON engagements (customer_id, at DESC);
