package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestEventPathRunsGenericPlans: the request path's statements run on
// their generic plans. Over every monthly partition of events, Postgres
// would otherwise plan insert-events and mark-events-dispatched again on
// every call (0.4 to 0.7 ms of planning for 0.15 ms of work in the event
// dispatch benchmark). pg_prepared_statements counts, per session, the
// plans each prepared statement ran on; one connection makes it this
// test's session.
func TestEventPathRunsGenericPlans(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	cfg.MaxConns = 1
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := journey.Customer{ID: "c-plans", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}}
	if _, err := s.UpsertCustomer(ctx, c, "test"); err != nil {
		t.Fatal(err)
	}
	const calls = 8 // Postgres tries custom plans for the first five
	for i := range calls {
		id := fmt.Sprintf("e-plans-%d", i)
		res, err := s.AcceptEvents(ctx, []journey.Event{{ID: id, Type: "visit", CustomerID: c.ID, At: time.Now()}})
		if err != nil || res[0].Status != "accepted" || res[0].Customer == nil {
			t.Fatalf("accept: %+v %v", res, err)
		}
		if _, err := s.Settle(ctx, store.Settlement{Dispatched: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"insert-events", "mark-events-dispatched"} {
		var generic, custom int64
		if err := s.Pool().QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1`, name).
			Scan(&generic, &custom); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if custom != 0 || generic != calls {
			t.Errorf("%s ran on %d custom and %d generic plans, want %d generic", name, custom, generic, calls)
		}
	}
}

// TestEventPathLooksEventsUpByIndex: the request path's generic plans
// find an event by its index in every month, whatever the month held when
// the plan was made. A plan made while the current month's partition held
// a page of events scanned all of it on every call, and went on doing so
// as the month filled until autovacuum's next ANALYZE: in the event
// dispatch benchmark the mark of each routed event read 54 blocks and
// 2,400 rows (auto_explain), two scans of the month per event.
func TestEventPathLooksEventsUpByIndex(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	ctx := context.Background()
	c := journey.Customer{ID: "c-index", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}}
	accept := func(s *store.Store, id string) {
		t.Helper()
		res, err := s.AcceptEvents(ctx, []journey.Event{{ID: id, Type: "visit", CustomerID: c.ID, At: time.Now()}})
		if err != nil || res[0].Status != "accepted" {
			t.Fatalf("accept %s: %+v %v", id, res, err)
		}
		if _, err := s.Settle(ctx, store.Settlement{Dispatched: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	// A page of events in this month's partition before the plans are made.
	seed, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed.UpsertCustomer(ctx, c, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		accept(seed, fmt.Sprintf("e-seed-%d", i))
	}
	seed.Close()
	// One connection: the plans this test looks at are its session's.
	cfg.MaxConns = 1
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 8 {
		accept(s, fmt.Sprintf("e-index-%d", i))
	}
	for name, args := range map[string]string{
		"insert-events":          `('{e-x}', '{visit}', '{c-index}', '{2026-01-01T00:00:00Z}', '{"{}"}', 'live')`,
		"mark-events-dispatched": `('{e-x}')`,
	} {
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// As the request path's transactions begin: should the plan be
		// made again now (autovacuum), it is made as theirs would be.
		if _, err := tx.Exec(ctx, "generic-plans"); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`EXPLAIN (COSTS OFF) EXECUTE %q %s`, name, args))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		for _, line := range plan {
			if strings.Contains(line, "Seq Scan on events") {
				t.Errorf("%s scans a month of events: %s\n%s", name, strings.TrimSpace(line), strings.Join(plan, "\n"))
			}
		}
	}
}

// TestAcceptReadsOnlyItsCustomersWaitingEvents: accepting a live event
// asks whether an older event of its customer failed and waits for a
// retry. That must be a look at the customer's own waiting events: as a
// hashed subplan Postgres read every waiting live event of every customer
// on every accept (16 of the insert's 47 blocks in the event dispatch
// benchmark, and without bound in a backlog, such as while Temporal is
// away and events wait for the sweeper).
func TestAcceptReadsOnlyItsCustomersWaitingEvents(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	cfg.MaxConns = 1 // the prepared statement explained is this session's
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	customer := func(id string) {
		t.Helper()
		c := journey.Customer{ID: id, Email: id + "@example.no", Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}}
		if _, err := s.UpsertCustomer(ctx, c, "test"); err != nil {
			t.Fatal(err)
		}
	}
	customer("c-new")
	n := 0
	// blocks is what accepting one more event of c-new reads, on the
	// generic plan the request path runs.
	blocks := func() int {
		t.Helper()
		n++
		id := fmt.Sprintf("e-new-%d", n)
		if _, err := s.AcceptEvents(ctx, []journey.Event{{ID: id, Type: "visit", CustomerID: "c-new", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Settle(ctx, store.Settlement{Dispatched: []string{id}}); err != nil {
			t.Fatal(err)
		}
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, "generic-plans"); err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		if err := tx.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE "insert-events"
			('{e-explain-%d}', '{visit}', '{c-new}', '{2026-01-01T00:00:00Z}', '{"{}"}', 'live')`, n)).Scan(&out); err != nil {
			t.Fatal(err)
		}
		plan, _ := out[0]["Plan"].(map[string]any)
		hit, _ := plan["Shared Hit Blocks"].(float64)
		read, _ := plan["Shared Read Blocks"].(float64)
		return int(hit + read)
	}
	for range 8 { // past Postgres' first five custom plans
		blocks()
	}
	before := blocks()
	// A backlog: 3,000 live events of 30 other customers, stored and not
	// routed yet.
	for i := range 30 {
		id := fmt.Sprintf("c-waiting-%02d", i)
		customer(id)
		evs := make([]journey.Event, 100)
		for j := range evs {
			evs[j] = journey.Event{ID: fmt.Sprintf("e-waiting-%02d-%03d", i, j), Type: "visit", CustomerID: id, At: time.Now()}
		}
		if _, err := s.AcceptEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	after := blocks()
	t.Logf("accepting an event read %d blocks, %d beside the backlog", before, after)
	// The insert's own indexes grow a level with the backlog (8 blocks
	// more); reading the backlog read 58 more.
	if after > before+15 {
		t.Fatalf("accepting an event read %d blocks beside a backlog of 3,000 other customers' events, %d without it", after, before)
	}
}
