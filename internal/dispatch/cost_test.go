package dispatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/stacktest"
)

// TestRoutingAnEventSettlesInOneRoundTrip: routing a fresh event to the
// runs it starts costs, in Postgres, the customer's row, one round trip per
// journey it starts (the customer's first run there is recorded in the
// statement that looks for their latest), and then one round trip (one
// transaction) that settles everything: the runs' Temporal run ids, the
// routes, the event marked dispatched, and the events parked for the new
// runs. Every round trip on the event path is time a replica does not
// route; the event dispatch benchmark is the measure (docs/scaling.md).
func TestRoutingAnEventSettlesInOneRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-costly")
	ev := placed(c, "e-costly", "o-1", time.Now())
	b.store(t, ev)

	var res dispatch.Result
	var err error
	trips := stacktest.DBRoundTrips(ctx, func(ctx context.Context) { res, err = b.router.Route(ctx, ev) })
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for _, o := range res.Journeys {
		if o.Action == dispatch.ActionStarted {
			started++
		}
	}
	if started == 0 {
		t.Fatalf("route %+v: want a run started", res)
	}
	if want := 2 + started; len(trips) > want {
		t.Errorf("routing one event to %d new run(s) took %d round trips to Postgres, want at most %d: %v", started, len(trips), want, trips)
	}

	// What the settling round trip wrote, all of it.
	rec := record(t, b.s.Store, ev.ID)
	if rec.Status() != "routed" || len(rec.Routes) != len(res.Journeys) {
		t.Fatalf("event %s with routes %+v, want routed with %d routes", rec.Status(), rec.Routes, len(res.Journeys))
	}
	run, err := b.s.Store.RunByEntry(ctx, "await", ev.ID)
	if err != nil || run.RunID == "" {
		t.Fatalf("await's run %+v %v: want its Temporal run id recorded", run, err)
	}
}
