-- Delivery knows what it knows. A message moves
--
--   reserved -> sending -> uncertain -> sent
--                    \          \---> reserved (4xx to the final ".") | failed (5xx)
--                     \-> reserved | failed | released (nothing handed over)
--
-- "uncertain" means the server may have the message: the whole message was
-- handed over (email: the final "." of DATA was about to be written) and no
-- answer came back. It counts as sent for the policy and is never sent
-- again automatically; only an explicit refusal moves a message back.
--
-- send_attempt fences attempts: each attempt to send takes the next number,
-- and every later write of that attempt names it, so an attempt that was
-- given up for dead (a worker stopped with SIGSTOP and resumed) finds its
-- number stale and cannot hand the message over a second time.
ALTER TABLE contact_ledger DROP CONSTRAINT contact_ledger_status_check;
ALTER TABLE contact_ledger ADD CONSTRAINT contact_ledger_status_check
    CHECK (status IN ('reserved', 'sending', 'uncertain', 'sent', 'released', 'deferred', 'suppressed', 'failed'));
ALTER TABLE contact_ledger ADD COLUMN send_attempt int NOT NULL DEFAULT 0;

-- Messages in flight or possibly delivered count against caps like sent
-- ones.
DROP INDEX contact_ledger_window;
CREATE INDEX contact_ledger_window ON contact_ledger (customer_id, contacted_at DESC)
    WHERE status IN ('reserved', 'sending', 'uncertain', 'sent');

-- Push goes to each of a customer's subscriptions separately, and each
-- request's fate is recorded on its own: before the request (sending) and
-- after the answer. Only subscriptions whose request failed temporarily
-- (retry) are tried again; a request left in sending by an attempt that
-- died is uncertain, never repeated.
CREATE TABLE push_deliveries (
    idempotency_key text NOT NULL,
    subscription_id bigint NOT NULL,
    status          text NOT NULL CHECK (status IN ('sending', 'sent', 'uncertain', 'retry', 'failed', 'gone')),
    error           text NOT NULL DEFAULT '',
    -- A 429 or 503 with Retry-After: not tried again before this.
    retry_after     timestamptz,
    attempts        int NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_key, subscription_id)
);
