-- migrate: no-transaction
--
-- The contact ledger, events and event routes become partitioned by month
-- (012), so that old months are dropped whole instead of deleted row by
-- row, and queries for recent rows never read old ones. A deployment
-- upgraded in place keeps its rows: each table becomes the first
-- partition of its new self, "<table>_legacy", covering everything before
-- a bound two months ahead, and monthly partitions start there. The
-- retention job drops the legacy partition like any other once the whole
-- of it is older than the retention.
--
-- This migration does, while lojal keeps running, everything that takes
-- time on a large table: the indexes the partitions need (built
-- CONCURRENTLY), the checks that let 012 attach the old table without
-- reading it (validated without blocking writes), and the registry of
-- event ids. 012 then only renames, attaches and creates, in one short
-- transaction. Every statement here can run again: an interrupted
-- migration is run again from the start.

-- Where each table's legacy partition ends: two months ahead, so no row
-- written while this migration runs can fall beyond it. Kept from the
-- first attempt if this migration runs again.
CREATE TABLE IF NOT EXISTS partitioning_legacy (
    table_name   text PRIMARY KEY,
    legacy_until timestamptz NOT NULL
);
INSERT INTO partitioning_legacy (table_name, legacy_until)
SELECT t, (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months') AT TIME ZONE 'UTC'
FROM unnest(ARRAY['contact_ledger', 'events', 'event_routes']) AS t
ON CONFLICT (table_name) DO NOTHING;

-- Event ids stay unique across monthly partitions through a registry of
-- their own: a primary key on a partitioned table must include the
-- partition key, and the same event delivered again a month later must
-- still be found. Until 012 the old events table fills it by trigger;
-- from then on the insert does.
CREATE TABLE IF NOT EXISTS event_ids (
    id          text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_ids_received ON event_ids (received_at);

CREATE OR REPLACE FUNCTION events_register_id() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO event_ids (id, received_at) VALUES (NEW.id, NEW.received_at) ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_register_id AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_register_id();

-- Events stored before the trigger: the trigger's creation waited for
-- every transaction inserting events, so this sees all of them.
INSERT INTO event_ids (id, received_at)
SELECT id, received_at FROM events
ON CONFLICT (id) DO NOTHING;

-- A route is partitioned with its event: it carries the event's
-- received_at, and goes when the event's month goes.
ALTER TABLE event_routes ADD COLUMN IF NOT EXISTS received_at timestamptz;

CREATE OR REPLACE FUNCTION event_routes_received_at() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.received_at IS NULL THEN
        NEW.received_at := coalesce((SELECT received_at FROM event_ids WHERE id = NEW.event_id), now());
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER event_routes_received_at BEFORE INSERT ON event_routes
    FOR EACH ROW EXECUTE FUNCTION event_routes_received_at();

UPDATE event_routes r
SET received_at = coalesce((SELECT k.received_at FROM event_ids k WHERE k.id = r.event_id), r.routed_at)
WHERE r.received_at IS NULL;

DO $$
BEGIN
    ALTER TABLE event_routes ADD CONSTRAINT event_routes_received_at_set CHECK (received_at IS NOT NULL) NOT VALID;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END $$;

ALTER TABLE event_routes VALIDATE CONSTRAINT event_routes_received_at_set;

-- Checks that prove every row belongs in the legacy partition, validated
-- here (without blocking writes) so that attaching the table in 012 does
-- not have to read it under a lock.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT p.table_name, p.legacy_until,
                    CASE p.table_name WHEN 'contact_ledger' THEN 'decided_at' ELSE 'received_at' END AS col
             FROM partitioning_legacy p ORDER BY 1 LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I < %L) NOT VALID',
                t.table_name, t.table_name || '_before_partitions', t.col, t.legacy_until);
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END;
    END LOOP;
END $$;

ALTER TABLE contact_ledger VALIDATE CONSTRAINT contact_ledger_before_partitions;
ALTER TABLE events VALIDATE CONSTRAINT events_before_partitions;
ALTER TABLE event_routes VALIDATE CONSTRAINT event_routes_before_partitions;

-- The indexes the partitioned tables have that the old tables lack. They
-- must match the partitioned tables' definitions exactly for 012 to adopt
-- them instead of building them under its lock. CREATE INDEX CONCURRENTLY
-- waits for every transaction older than it, blocking no one meanwhile,
-- so it gets no lock timeout.
SET lock_timeout = 0;

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contact_ledger_legacy_pk ON contact_ledger (id, decided_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS contact_ledger_legacy_key ON contact_ledger (idempotency_key);
CREATE INDEX CONCURRENTLY IF NOT EXISTS contact_ledger_legacy_customer ON contact_ledger (customer_id, decided_at);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_legacy_pk ON events (id, received_at);
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS event_routes_legacy_pk ON event_routes (event_id, journey_id, received_at);

-- Retention deletes superseded journey runs that ended long ago, oldest
-- first (see queries/retention.sql).
CREATE INDEX CONCURRENTLY IF NOT EXISTS journey_runs_ended ON journey_runs (ended_at, id) WHERE ended_at IS NOT NULL;
