-- Complaints ("this is spam") are counted, not only turned into a
-- suppression: the spam rate (complaints per 1,000 delivered emails per
-- day) is what Gmail and Yahoo hold bulk senders to, and a suppression row
-- keeps one reason per address. One row per complaint about one message;
-- the same report delivered again counts once.
CREATE TABLE complaints (
    id          bigserial PRIMARY KEY,
    channel     text NOT NULL,
    address     text NOT NULL,
    message_id  text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, address, message_id)
);
CREATE INDEX complaints_received ON complaints (received_at);
