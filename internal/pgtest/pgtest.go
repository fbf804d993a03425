// Package pgtest gives tests a real, migrated Postgres: a throw-away
// cluster started once per test binary (or TEST_DATABASE_URL when set), and
// a fresh schema per test so tests run in parallel without seeing each
// other's rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/store"
)

// Cluster is the Postgres shared by one test binary.
type Cluster struct {
	URL string
	pg  *devstack.Postgres
}

var (
	once    sync.Once
	shared  *Cluster
	initErr error
)

// Main runs the tests and stops the cluster afterwards. Call it from
// TestMain in packages that use Postgres.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared cluster, if this binary started one.
func Stop() {
	if shared != nil && shared.pg != nil {
		shared.pg.Stop()
	}
}

// Shared returns the binary's cluster, starting it on first use.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	once.Do(func() {
		if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
			shared = &Cluster{URL: url}
			return
		}
		pg, err := devstack.StartPostgres(context.Background(), slog.New(slog.DiscardHandler), devstack.PostgresOptions{})
		if err != nil {
			initErr = err
			return
		}
		shared = &Cluster{URL: pg.URL, pg: pg}
	})
	if initErr != nil {
		tb.Fatalf("start postgres: %v", initErr)
	}
	return shared
}

// Postgres returns the shared cluster's server, or nil when tests run
// against TEST_DATABASE_URL.
func (c *Cluster) Postgres() *devstack.Postgres { return c.pg }

// Config creates a new migrated schema for one test and returns the store
// configuration that uses it. The schema is dropped when the test ends.
func Config(tb testing.TB) store.Config {
	tb.Helper()
	c := Shared(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := store.Config{URL: c.URL, Schema: "t_" + hex.EncodeToString(b[:])}
	ctx := context.Background()
	if _, err := store.Migrate(ctx, cfg); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.URL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA %s CASCADE", pgx.Identifier{cfg.Schema}.Sanitize()))
	})
	return cfg
}

// Store opens a store on a fresh schema, its configuration changed by
// each of change first.
func Store(tb testing.TB, change ...func(*store.Config)) *store.Store {
	tb.Helper()
	cfg := Config(tb)
	for _, f := range change {
		f(&cfg)
	}
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}
