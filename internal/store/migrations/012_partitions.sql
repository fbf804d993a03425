-- The contact ledger, events and event routes, partitioned by month: a
-- month past its retention is dropped whole (docs/retention.md), and the
-- queries of a decision or a report read only the months they concern.
-- 011 prepared the old tables without blocking writes; this transaction
-- only renames, attaches and creates. An old table that holds rows
-- becomes the partition "<table>_legacy" (everything before its bound); an
-- empty one (a new installation) is dropped.
--
-- None of the three has a foreign key: an insert would lock the
-- customer's row (a write on every decision and every event), and
-- attaching or dropping a partition would lock the customers table. A
-- customer's rows still go with the customer (customers_erase below).

-- Which tables are partitioned, and the fill factor of their partitions.
-- The ledger's rows are updated two or three times each as a message is
-- sent (reserved, sending, uncertain, sent); room left on each page lets
-- those be HOT updates, which write no index entries.
CREATE TABLE partitioned_tables (
    table_name text PRIMARY KEY,
    fillfactor int NOT NULL CHECK (fillfactor BETWEEN 10 AND 100)
);
INSERT INTO partitioned_tables VALUES ('contact_ledger', 80), ('events', 100), ('event_routes', 100);

-- The partitions of a table and their bounds (-infinity for the legacy
-- partition's lower one).
CREATE FUNCTION partition_bounds(parent text)
RETURNS TABLE (partition text, lower_bound timestamptz, upper_bound timestamptz, detach_pending boolean)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT c.relname::text,
           CASE WHEN b[1] = 'MINVALUE' THEN '-infinity'::timestamptz ELSE btrim(b[1], '''')::timestamptz END,
           CASE WHEN b[2] = 'MAXVALUE' THEN 'infinity'::timestamptz ELSE btrim(b[2], '''')::timestamptz END,
           i.inhdetachpending
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \((.*)\) TO \((.*)\)') AS b
    WHERE i.inhparent = parent::regclass
$$;

-- Creates the monthly partitions (UTC months, named <table>_pYYYYMM) that
-- cover [from_ts, to_ts) and do not exist yet, and returns their names.
-- A partition is created on its own and then attached, which locks the
-- table only against other schema changes (SHARE UPDATE EXCLUSIVE), never
-- against the decisions and events being written.
CREATE FUNCTION ensure_monthly_partitions(parent text, from_ts timestamptz, to_ts timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    m    timestamp := date_trunc('month', from_ts AT TIME ZONE 'UTC');
    lo   timestamptz;
    hi   timestamptz;
    part text;
    fill int;
BEGIN
    SELECT p.fillfactor INTO STRICT fill FROM partitioned_tables p WHERE p.table_name = parent;
    WHILE m AT TIME ZONE 'UTC' < to_ts LOOP
        lo := m AT TIME ZONE 'UTC';
        hi := (m + interval '1 month') AT TIME ZONE 'UTC';
        part := parent || '_p' || to_char(m, 'YYYYMM');
        IF NOT EXISTS (SELECT 1 FROM partition_bounds(parent) b WHERE b.lower_bound < hi AND b.upper_bound > lo) THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) WITH (fillfactor = %s)', part, parent, fill);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
            RETURN NEXT part;
        END IF;
        m := m + interval '1 month';
    END LOOP;
END $$;

-- contact_ledger, by decision time.
ALTER TABLE contact_ledger RENAME TO contact_ledger_legacy;
ALTER TABLE contact_ledger_legacy
    DROP CONSTRAINT contact_ledger_pkey,
    DROP CONSTRAINT contact_ledger_idempotency_key_key,
    DROP CONSTRAINT contact_ledger_customer_id_fkey;
DROP INDEX contact_ledger_window, contact_ledger_customer;
ALTER INDEX contact_ledger_message_id RENAME TO contact_ledger_legacy_message_id;
ALTER INDEX contact_ledger_decided RENAME TO contact_ledger_legacy_decided;
ALTER TABLE contact_ledger_legacy ADD CONSTRAINT contact_ledger_legacy_pkey PRIMARY KEY USING INDEX contact_ledger_legacy_pk;
ALTER TABLE contact_ledger_legacy SET (fillfactor = 80);

-- The contact ledger: one row per policy decision about one message. A
-- message that is deferred twice and then sent has three rows, linked by
-- request_key. Rows in status reserved, sending, uncertain or sent count
-- against caps.
CREATE TABLE contact_ledger (
    id              bigint NOT NULL DEFAULT nextval('contact_ledger_id_seq'),
    -- request_key plus the ask number: the same decision retried by
    -- Temporal finds its row instead of deciding again. It is unique
    -- because a decision looks for it under the customer's lock before
    -- writing it (store.Decide); an index of a partitioned table can only
    -- be unique together with the partition key.
    idempotency_key text NOT NULL,
    request_key     text NOT NULL,
    customer_id     text NOT NULL,
    workflow_id     text NOT NULL,
    journey_id      text NOT NULL,
    journey_version text NOT NULL DEFAULT '',
    step_id         text NOT NULL,
    template        text NOT NULL DEFAULT '',
    channel         text NOT NULL,
    topic           text NOT NULL DEFAULT '',
    purpose         text NOT NULL DEFAULT '',
    priority        text NOT NULL,
    decision        text NOT NULL CONSTRAINT contact_ledger_decision_check CHECK (decision IN ('allow', 'defer', 'suppress')),
    reason          text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CONSTRAINT contact_ledger_status_check
                    CHECK (status IN ('reserved', 'sending', 'uncertain', 'sent', 'released', 'deferred', 'suppressed', 'failed')),
    decided_at      timestamptz NOT NULL,
    defer_until     timestamptz,
    -- When the message reached (or, while reserved, is about to reach) the
    -- customer; caps count this. Within a week of decided_at (store:
    -- ContactSlack), which is how a decision finds it by partition.
    contacted_at    timestamptz,
    expires_at      timestamptz,
    sent_at         timestamptz,
    -- Set when the decision allows the message (it is derived from the
    -- idempotency key), so that sending it changes no indexed column.
    message_id      text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    send_attempt    int NOT NULL DEFAULT 0,
    PRIMARY KEY (id, decided_at)
) PARTITION BY RANGE (decided_at);
ALTER SEQUENCE contact_ledger_id_seq OWNED BY contact_ledger.id;

-- No index names status or contacted_at, which change as a message is
-- sent: the contact window is found by customer and decision time, and
-- status and contacted_at are checked on the few rows that finds.
CREATE INDEX contact_ledger_key ON contact_ledger (idempotency_key);
CREATE INDEX contact_ledger_customer ON contact_ledger (customer_id, decided_at);
CREATE INDEX contact_ledger_message_id ON contact_ledger (message_id) WHERE message_id <> '';
CREATE INDEX contact_ledger_decided ON contact_ledger USING brin (decided_at);

-- events, by the time lojal received them.
ALTER TABLE events RENAME TO events_legacy;
DROP TRIGGER events_register_id ON events_legacy;
DROP FUNCTION events_register_id();
ALTER TABLE events_legacy
    DROP CONSTRAINT events_pkey,
    DROP CONSTRAINT events_customer_id_fkey;
DROP INDEX events_seq;
ALTER INDEX events_due RENAME TO events_legacy_due;
ALTER INDEX events_undispatched RENAME TO events_legacy_undispatched;
ALTER INDEX events_dead RENAME TO events_legacy_dead;
ALTER INDEX events_customer RENAME TO events_legacy_customer;
ALTER TABLE events_legacy ADD CONSTRAINT events_legacy_pkey PRIMARY KEY USING INDEX events_legacy_pk;

-- Accepted events, and the outbox routing works from. An id names one
-- event for as long as event_ids remembers it (the events retention).
CREATE TABLE events (
    id              text NOT NULL,
    type            text NOT NULL,
    customer_id     text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    data            jsonb NOT NULL DEFAULT '{}',
    received_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at   timestamptz,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    dispatch_error  text NOT NULL DEFAULT '',
    lane            text NOT NULL DEFAULT 'live' CONSTRAINT events_lane_check CHECK (lane IN ('live', 'bulk')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    dead_at         timestamptz,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX events_due ON events (lane, next_attempt_at) WHERE dispatched_at IS NULL AND dead_at IS NULL;
CREATE INDEX events_undispatched ON events (customer_id, lane, seq) WHERE dispatched_at IS NULL AND dead_at IS NULL;
CREATE INDEX events_dead ON events (dead_at) WHERE dead_at IS NOT NULL;
CREATE INDEX events_customer ON events (customer_id, occurred_at);

-- Numbering goes on where the old table's left off.
DO $$
DECLARE
    next bigint := (SELECT coalesce(max(seq), 0) + 1 FROM events_legacy);
BEGIN
    EXECUTE format('ALTER TABLE events ALTER COLUMN seq RESTART WITH %s', next);
END $$;
ALTER TABLE events_legacy ALTER COLUMN seq DROP IDENTITY;

-- event_routes, with their event.
ALTER TABLE event_routes RENAME TO event_routes_legacy;
DROP TRIGGER event_routes_received_at ON event_routes_legacy;
DROP FUNCTION event_routes_received_at();
ALTER TABLE event_routes_legacy DROP CONSTRAINT event_routes_pkey;
ALTER TABLE event_routes_legacy ALTER COLUMN received_at SET NOT NULL;
ALTER TABLE event_routes_legacy DROP CONSTRAINT event_routes_received_at_set;
ALTER INDEX event_routes_parked RENAME TO event_routes_legacy_parked;
ALTER INDEX event_routes_park_until RENAME TO event_routes_legacy_park_until;
ALTER INDEX event_routes_requeued RENAME TO event_routes_legacy_requeued;
ALTER TABLE event_routes_legacy ADD CONSTRAINT event_routes_legacy_pkey PRIMARY KEY USING INDEX event_routes_legacy_pk;

-- What routing did with an event, per journey it concerns (006). It is
-- partitioned by its event's received_at, so it goes with its event.
CREATE TABLE event_routes (
    event_id    text NOT NULL,
    journey_id  text NOT NULL,
    workflow_id text NOT NULL DEFAULT '',
    action      text NOT NULL CONSTRAINT event_routes_action_check
                CHECK (action IN ('started', 'signalled', 'skipped', 'parked', 'unmatched', 'requeued')),
    reason      text NOT NULL DEFAULT '',
    park_until  timestamptz,
    routed_at   timestamptz NOT NULL DEFAULT now(),
    received_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, journey_id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX event_routes_parked ON event_routes (workflow_id) WHERE action = 'parked';
CREATE INDEX event_routes_park_until ON event_routes (park_until) WHERE action = 'parked';
CREATE INDEX event_routes_requeued ON event_routes (routed_at) WHERE action = 'requeued';

-- Each old table: attached as the legacy partition when it holds rows,
-- dropped when it does not; then the monthly partitions from there to
-- three months ahead (the retention job keeps them ahead from then on).
-- A new installation starts a month back, for rows written by a clock a
-- little behind.
DO $$
DECLARE
    t     record;
    held  boolean;
    first timestamptz;
BEGIN
    FOR t IN SELECT table_name, legacy_until FROM partitioning_legacy ORDER BY 1 LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', t.table_name || '_legacy') INTO STRICT held;
        IF held THEN
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                t.table_name, t.table_name || '_legacy', t.legacy_until);
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t.table_name || '_legacy', t.table_name || '_before_partitions');
            first := t.legacy_until;
        ELSE
            EXECUTE format('DROP TABLE %I', t.table_name || '_legacy');
            first := (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month') AT TIME ZONE 'UTC';
        END IF;
        PERFORM ensure_monthly_partitions(t.table_name, first, now() + interval '3 months');
    END LOOP;
END $$;
DROP TABLE partitioning_legacy;

-- A customer's ledger and events go with the customer, as they did when
-- they had foreign keys with ON DELETE CASCADE.
CREATE FUNCTION customers_erase() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM event_routes WHERE event_id IN (SELECT id FROM events WHERE customer_id = OLD.id);
    DELETE FROM events WHERE customer_id = OLD.id;
    DELETE FROM contact_ledger WHERE customer_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER customers_erase AFTER DELETE ON customers FOR EACH ROW EXECUTE FUNCTION customers_erase();

-- Where the retention job's passes over journey_runs got to
-- (queries/retention.sql), so each run goes on from there.
CREATE TABLE retention_cursors (
    name text PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT '-infinity',
    id   bigint NOT NULL DEFAULT 0
);
