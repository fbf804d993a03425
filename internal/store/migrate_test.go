package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// schemaConn connects to the test's schema.
func schemaConn(t *testing.T, cfg store.Config) *pgx.Conn {
	t.Helper()
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["search_path"] = cfg.Schema
	conn, err := pgx.ConnectConfig(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestConcurrentIndexMigrationLetsWritesContinue: a migration marked
// no-transaction builds an index CONCURRENTLY on a table of a million
// rows while a writer inserts and updates rows of it. The writer is never
// held up for long, and the index ends up valid.
//
// Fails before the runner knew no-transaction migrations: "CREATE INDEX
// CONCURRENTLY cannot run inside a transaction block".
func TestConcurrentIndexMigrationLetsWritesContinue(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	conn := schemaConn(t, cfg)
	if _, err := conn.Exec(ctx, `CREATE TABLE big (id bigserial PRIMARY KEY, customer_id text NOT NULL, n int NOT NULL, at timestamptz NOT NULL);
		INSERT INTO big (customer_id, n, at)
		SELECT 'c-' || (i % 100000), i, now() - i * interval '1 second' FROM generate_series(1, 1000000) i;
		ANALYZE big`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, store.Migration{Version: len(ms) + 1, Name: "big_index", NoTransaction: true,
		SQL: "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS big_customer ON big (customer_id, at);\n"})

	writer := schemaConn(t, cfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes []time.Time // when each write finished
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := writer.Exec(ctx, "INSERT INTO big (customer_id, n, at) VALUES ($1, $2, now())", fmt.Sprint("w-", i), i)
			if err == nil {
				_, err = writer.Exec(ctx, "UPDATE big SET n = n + 1 WHERE id = $1", i%1000000+1)
			}
			if err != nil {
				writeErr = err
				return
			}
			writes = append(writes, time.Now())
		}
	}()
	start := time.Now()
	applied, err := store.Apply(ctx, cfg, ms)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if writeErr != nil {
		t.Fatalf("write during the migration: %v", writeErr)
	}
	if !slices.Equal(applied, []int{len(ms)}) {
		t.Fatalf("applied %v, want [%d]", applied, len(ms))
	}
	// The longest the writer waited while the index was being built.
	var during int
	longest, prev := time.Duration(0), start
	for _, w := range writes {
		if w.After(start.Add(took)) {
			break
		}
		during++
		longest = max(longest, w.Sub(prev))
		prev = w
	}
	t.Logf("index on 1M rows built in %s; %d writes meanwhile, longest wait %s", took.Round(time.Millisecond), during, longest.Round(time.Millisecond))
	if during < 10 || longest > time.Second {
		t.Fatalf("writes during the migration (%s): %d, longest wait %s; want them to go on (>= 10, waits <= 1s)", took, during, longest)
	}
	var valid bool
	if err := conn.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_customer'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("index valid: %v %v", valid, err)
	}
}

// TestNoTransactionMigrationResumes: a no-transaction migration that
// fails half-way (a unique index meets a duplicate) leaves its earlier
// statements done and an invalid index; run again once the data is
// fixed, it completes, replacing the invalid index with a valid one.
func TestNoTransactionMigrationResumes(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	conn := schemaConn(t, cfg)
	if _, err := conn.Exec(ctx, `CREATE TABLE things (id int NOT NULL, name text NOT NULL);
		INSERT INTO things VALUES (1, 'a'), (2, 'b'), (2, 'b')`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, store.Migration{Version: len(ms) + 1, Name: "things_unique", NoTransaction: true,
		SQL: `-- migrate: no-transaction
ALTER TABLE things ADD COLUMN IF NOT EXISTS note text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS things_id ON things (id);
`})
	_, err = store.Apply(ctx, cfg, ms)
	if err == nil || !strings.Contains(err.Error(), "statement 2 (CREATE UNIQUE INDEX CONCURRENTLY") {
		t.Fatalf("first run: %v, want it to fail on statement 2", err)
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&version); err != nil || version != len(ms)-1 {
		t.Fatalf("after the failure the schema is at %d (%v), want %d: the migration must not count as applied", version, err, len(ms)-1)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM things WHERE ctid = (SELECT max(ctid) FROM things WHERE id = 2)"); err != nil {
		t.Fatal(err)
	}
	applied, err := store.Apply(ctx, cfg, ms)
	if err != nil || !slices.Equal(applied, []int{len(ms)}) {
		t.Fatalf("second run: %v %v", applied, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO things VALUES (1, 'again')"); err == nil {
		t.Fatal("duplicate id accepted: the unique index is not valid")
	}
}

// TestConcurrentIndexRetriedAfterLockTimeout: CREATE INDEX CONCURRENTLY
// waits for every transaction older than it; one held open past the
// migration's lock timeout makes it give up, leaving an invalid index.
// The retry must build a valid one, not skip it (IF NOT EXISTS).
//
// Fails before the retry dropped the invalid index: the migration
// "succeeds" and the index is invalid (seen under make test's load).
func TestConcurrentIndexRetriedAfterLockTimeout(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	conn := schemaConn(t, cfg)
	if _, err := conn.Exec(ctx, "CREATE TABLE slow (id int NOT NULL); INSERT INTO slow SELECT generate_series(1, 1000)"); err != nil {
		t.Fatal(err)
	}
	// An open transaction that has written to the table: the index build
	// must wait for it.
	holder := schemaConn(t, cfg)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO slow VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	committed := make(chan struct{})
	time.AfterFunc(7*time.Second, func() { _ = tx.Commit(context.Background()); close(committed) })
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, store.Migration{Version: len(ms) + 1, Name: "slow_index", NoTransaction: true,
		SQL: "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS slow_id ON slow (id);\n"})
	_, err = store.Apply(ctx, cfg, ms)
	<-committed // the holder's connection is the timer's until then
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var valid bool
	if err := conn.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = 'slow_id'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("index valid after the retry: %v %v", valid, err)
	}
}

// TestEveryForeignKeyHasAnIndex: deleting or updating a referenced row
// makes Postgres find the rows that reference it; without an index on the
// referencing columns that is a scan of the whole referencing table per
// row. consent_requests.entry_id had none, and every consent entry the
// retention job purged scanned consent_requests whole.
func TestEveryForeignKeyHasAnIndex(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	conn := schemaConn(t, cfg)
	rows, err := conn.Query(context.Background(), `
SELECT c.conrelid::regclass::text, c.conname
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var table, name string
		err := r.Scan(&table, &name)
		return table + " (" + name + ")", err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("foreign keys with no index leading with their columns: %v", missing)
	}
}
