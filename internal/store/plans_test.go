package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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
