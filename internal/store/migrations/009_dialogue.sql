-- Dialogue: replies to lojal's emails, the conversations they open with
-- the people who help, and one-click answers to questions.
--
-- A conversation is one customer's open thread with a helper: the first
-- reply opens it, later replies join it while it is unanswered, and
-- answering it closes it. While one is open (and for a window after the
-- answer) the policy defers marketing to that customer.
CREATE TABLE conversations (
    id            text PRIMARY KEY,
    customer_id   text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- The message the first reply answered, and where it came from.
    message_id    text NOT NULL,
    journey_id    text NOT NULL DEFAULT '',
    step_id       text NOT NULL DEFAULT '',
    topic         text NOT NULL DEFAULT '',
    helper        text NOT NULL DEFAULT '',
    opened_at     timestamptz NOT NULL,
    answered_at   timestamptz,
    answered_by   text NOT NULL DEFAULT '',
    escalated_at  timestamptz
);
-- At most one open conversation per customer: a reply joins it.
CREATE UNIQUE INDEX conversations_open ON conversations (customer_id) WHERE answered_at IS NULL;
CREATE INDEX conversations_customer ON conversations (customer_id, opened_at DESC);

-- Every reply lojal matched to a message it sent, from the customer or
-- from another address (held for the helper, opening no conversation).
CREATE TABLE replies (
    id              text PRIMARY KEY,
    customer_id     text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    conversation_id text REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      text NOT NULL,
    journey_id      text NOT NULL DEFAULT '',
    step_id         text NOT NULL DEFAULT '',
    from_address    text NOT NULL,
    from_customer   boolean NOT NULL,
    -- source is reply (an email) or answer (free text on a thank-you page).
    source          text NOT NULL DEFAULT 'reply',
    subject         text NOT NULL DEFAULT '',
    body            text NOT NULL,
    event_id        text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_customer ON replies (customer_id, received_at);

-- One-click answers: the first answer to a question counts; a different
-- later one is recorded in survey_answer_changes and changes nothing else.
CREATE TABLE survey_answers (
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    survey      text NOT NULL,
    answer      text NOT NULL,
    free_text   text NOT NULL DEFAULT '',
    event_id    text NOT NULL,
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (customer_id, survey)
);
CREATE TABLE survey_answer_changes (
    id          bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    survey      text NOT NULL,
    answer      text NOT NULL,
    changed_at  timestamptz NOT NULL
);
CREATE INDEX survey_answer_changes_customer ON survey_answer_changes (customer_id, survey);
