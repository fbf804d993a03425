-- Lifting a suppression is a decision someone must answer for: who lifted
-- which address, what it was suppressed for, and why it was lifted.
CREATE TABLE suppression_lifts (
    id            bigserial PRIMARY KEY,
    channel       text NOT NULL,
    address       text NOT NULL,
    reason        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    suppressed_at timestamptz NOT NULL,
    lifted_by     text NOT NULL CHECK (lifted_by <> ''),
    why           text NOT NULL CHECK (why <> ''),
    lifted_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppression_lifts_address ON suppression_lifts (address, lifted_at DESC);

-- A bounce or complaint is applied only when it names a message lojal sent
-- to that address; reports often quote only the Message-ID.
CREATE INDEX contact_ledger_message_id ON contact_ledger (message_id) WHERE message_id <> '';
