package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
)

// TestAcceptingAnEventCostsFewRoundTrips: an event the API accepts is
// stored, checked for an older failing event of its customer and routed
// with its customer read in one round trip; then, per run it starts, one
// round trip that looks for the latest run and, finding none, records the
// new one; then one round trip settles it. The
// event dispatch benchmark (docs/scaling.md) is the measure of why.
func TestAcceptingAnEventCostsFewRoundTrips(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-accept-cost")

	var got []ingest.Accepted
	var err error
	trips := stacktest.DBRoundTrips(ctx, func(ctx context.Context) {
		got, err = s.Dispatcher.Accept(ctx, []journey.Event{event(c, "e-accept-cost", "order.placed", "o-1", time.Now())})
	})
	if err != nil || len(got) != 1 || got[0].Status != ingest.StatusAccepted {
		t.Fatalf("accept: %+v %v", got, err)
	}
	rec, err := s.Store.Event(ctx, "e-accept-cost")
	if err != nil || rec.Status() != "routed" {
		t.Fatalf("event %+v %v: want routed in the request path", rec, err)
	}
	started := 0
	for _, r := range rec.Routes {
		if r.Action == dispatch.ActionStarted {
			started++
		}
	}
	if started == 0 {
		t.Fatalf("routes %+v: want a run started", rec.Routes)
	}
	if want := 2 + started; len(trips) > want {
		t.Errorf("accepting one event that starts %d run(s) took %d round trips to Postgres, want at most %d: %v", started, len(trips), want, trips)
	}
}
