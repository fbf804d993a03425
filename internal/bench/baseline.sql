-- Baselines for `lojal bench`: the bare transaction the policy decision is
-- compared with. Not part of lojal's schema.

-- name: create
CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);

-- name: fill
INSERT INTO bench_counter (id) SELECT g FROM generate_series(1, $1::int) g ON CONFLICT DO NOTHING;

-- name: bump
UPDATE bench_counter SET n = n + 1 WHERE id = $1 RETURNING n;
