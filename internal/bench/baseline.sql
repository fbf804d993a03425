-- Baselines for `lojal bench`: the bare transaction the policy decision is
-- compared with. Not part of lojal's schema.

-- name: create
CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);

-- name: fill
INSERT INTO bench_counter (id) SELECT g FROM generate_series(1, $1::int) g ON CONFLICT DO NOTHING;

-- name: bump
UPDATE bench_counter SET n = n + 1 WHERE id = $1 RETURNING n;

-- name: ledger-customers
-- Customers c-1 .. c-$1 with email consent, for the ledger benchmark.
WITH c AS (
    INSERT INTO customers (id, email, timezone)
    SELECT 'c-' || i, 'c' || i || '@example.com', 'Europe/Oslo' FROM generate_series(1, $1::int) i
    RETURNING id
)
INSERT INTO consent_ledger (customer_id, channel, topic, action, basis, at, source)
SELECT id, 'email', '*', 'grant', 'consent', now(), 'import' FROM c;

-- name: ledger-partitions
-- The monthly partitions of the last $2 months, up to now ($1): the
-- current month and the $2 - 1 before it, no older (the oldest is the one
-- the benchmark drops, and it must hold its month of rows).
SELECT ensure_monthly_partitions(t.table_name, $1::timestamptz - make_interval(months => $2::int - 1), $1::timestamptz)
FROM partitioned_tables t;

-- name: ledger-month-rows
-- The rows ledger-ledger wrote for month $3 of $2 ending at $1 (a cached
-- ledger's: see LedgerOptions.Cache).
SELECT count(*) FROM contact_ledger
WHERE workflow_id = 'fill'
  AND decided_at >= (date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') - make_interval(months => $2::int - 1 - $3::int)) AT TIME ZONE 'UTC'
  AND decided_at < (date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') - make_interval(months => $2::int - 2 - $3::int)) AT TIME ZONE 'UTC';

-- name: ledger-ledger
-- Calendar month $3 (0: the oldest) of a ledger of $2 months ending at
-- $1 (the last is the current month, up to now): $4 decisions spread
-- evenly over it, about the customers c-1 .. c-$5. Seven in ten were
-- sent, the rest deferred, as a busy ledger's.
INSERT INTO contact_ledger (idempotency_key, request_key, customer_id, workflow_id, journey_id, step_id, channel, priority,
    decision, reason, status, decided_at, contacted_at, expires_at, sent_at, message_id, address, locale, subject, send_attempt)
SELECT 'fill-' || $3 || '-' || i || '.1', 'fill-' || $3 || '-' || i, 'c-' || (1 + (i::bigint * 7919 + $3::bigint * 104729) % $5::int),
       'fill', 'renewal', 'remind', CASE WHEN i % 5 = 0 THEN 'push' ELSE 'email' END, 'normal',
       CASE WHEN i % 10 < 7 THEN 'allow' ELSE 'defer' END, CASE WHEN i % 10 < 7 THEN 'ok' ELSE 'cap' END,
       CASE WHEN i % 10 < 7 THEN 'sent' ELSE 'deferred' END, at,
       CASE WHEN i % 10 < 7 THEN at + interval '1 minute' END, at + interval '15 minutes',
       CASE WHEN i % 10 < 7 THEN at + interval '1 minute' END,
       CASE WHEN i % 10 < 7 THEN md5('fill-' || $3 || '-' || i) || '@lojal.example' ELSE '' END,
       CASE WHEN i % 10 < 7 THEN 'c@example.com' ELSE '' END, 'nb', 'Your renewal', (i % 10 < 7)::int
FROM (SELECT (date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') - make_interval(months => $2::int - 1 - $3::int)) AT TIME ZONE 'UTC' AS lo) m,
     LATERAL (SELECT least(m.lo + interval '1 month', $1::timestamptz - interval '1 hour') AS hi) h,
     generate_series(0, $4::int - 1) i,
     LATERAL (SELECT m.lo + (i::float8 / $4::int) * (h.hi - m.lo) AS at) a;

-- name: ledger-runs
-- $2 journey runs spread evenly over the $3 months up to $1, of
-- customers c-1 .. c-$4, in 4 journeys: one in ten held out, three in ten
-- treated and two in ten held out reaching the goal (the journeys
-- report's entrants).
INSERT INTO journey_runs (workflow_id, journey_id, version, customer_id, trigger_event_id, started_at, ended_at, outcome, holdout)
SELECT 'w-' || i, 'journey-' || i % 4, 'v', 'c-' || (1 + (i::bigint * 7919) % $4::int), 'e-' || i, at, at + interval '1 day',
       CASE WHEN (i / 4) % 10 = 0 THEN CASE WHEN (i / 40) % 10 < 2 THEN 'goal' ELSE 'exit' END
            WHEN (i / 4) % 10 < 4 THEN 'goal' ELSE 'exit' END,
       (i / 4) % 10 = 0
FROM generate_series(0, $2::int - 1) i,
     LATERAL (SELECT $1::timestamptz - interval '1 hour' - (i::float8 / $2::int) * make_interval(months => $3::int) AS at) a;
