package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestALateSettleKeepsWhenTheEventWasRouted: a replica hung (SIGSTOP)
// between its SignalWithStart and its settle; the sweeper routed the
// event meanwhile. When the replica resumed, its settle recorded the same
// route again and moved routed_at to the moment it woke: the event looked
// routed 30 s late although its run had it within seconds (the replica
// failover fault test measured 30.1 s once), and `lojal events show`
// said the same. The same outcome recorded again keeps its first time; a
// new outcome (parked, then signalled; handed back) takes a new one.
func TestALateSettleKeepsWhenTheEventWasRouted(t *testing.T) {
	t.Parallel()
	ev := newOneEvent(t, "order.placed")
	// The sweeper found the run the replica started and signalled it.
	swept := store.Route{EventID: "e-1", JourneyID: "j", WorkflowID: "j/c-1/o-1", Action: "signalled"}
	ev.settle(swept)
	first := ev.route().RoutedAt
	// The hung replica's settle: it started the run; then a retry of it.
	late := swept
	late.Action = "started"
	for _, r := range []store.Route{late, late, swept} {
		time.Sleep(20 * time.Millisecond)
		ev.settle(r)
		if got := ev.route().RoutedAt; !got.Equal(first) {
			t.Fatalf("a settle of the same run (%s) again moved routed_at from %s to %s", r.Action, first.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
		}
	}
	// The run hands the event back: a new outcome, a new time.
	time.Sleep(20 * time.Millisecond)
	ev.requeue()
	if got := ev.route().RoutedAt; !got.After(first) {
		t.Fatalf("the event was handed back at %s, routed at %s: a new outcome keeps its old time", got.Format(time.RFC3339Nano), first.Format(time.RFC3339Nano))
	}
}

// TestALateSettleLeavesAHandedBackEventToBeRoutedAgain: a replica
// signalled an event to its run and hung before its settle; the run was
// finishing, did not apply the event and handed it back (requeued). When
// the replica woke, its settle wrote 'signalled' over 'requeued', and
// nothing routed the event again: the journey lost it. The same when the
// sweeper routes the handed-back event again to a run that is finishing
// too, and that run hands it back before the sweeper's settle. Only
// routing the hand-back it read replaces a requeued route.
func TestALateSettleLeavesAHandedBackEventToBeRoutedAgain(t *testing.T) {
	t.Parallel()
	ev := newOneEvent(t, "order.shipped")
	// The run hands the event back while the replica hangs; then the
	// replica settles.
	ev.requeue()
	signalled := store.Route{EventID: "e-1", JourneyID: "j", WorkflowID: "j/c-1/o-1", Action: "signalled"}
	ev.settle(signalled)
	if got := ev.route(); got.Action != "requeued" {
		t.Fatalf("after a hung replica's settle the handed-back event's route is %s, want requeued: nothing routes it again", got.Action)
	}
	// The sweeper routes it again (it read this hand-back) to a run that
	// hands it back too before the sweeper settles.
	read := ev.route().RoutedAt
	time.Sleep(5 * time.Millisecond)
	ev.requeue()
	stale := signalled
	stale.Replaces = read
	ev.settle(stale)
	if got := ev.route(); got.Action != "requeued" {
		t.Fatalf("after a settle of the hand-back before last the route is %s, want requeued", got.Action)
	}
	// Routed again from the latest hand-back, it is replaced.
	fresh := signalled
	fresh.Replaces = ev.route().RoutedAt
	ev.settle(fresh)
	if got := ev.route(); got.Action != "signalled" {
		t.Fatalf("after routing the latest hand-back again the route is %s, want signalled", got.Action)
	}
}

// oneEvent is a store holding event e-1 of customer c-1, for tests of
// its one route.
type oneEvent struct {
	s   *store.Store
	ctx context.Context
	t   *testing.T
}

// newOneEvent stores customer c-1 and event e-1 of type typ.
func newOneEvent(t *testing.T, typ string) oneEvent {
	t.Helper()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptEvents(ctx, []journey.Event{{ID: "e-1", Type: typ, CustomerID: "c-1", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	return oneEvent{s: s, ctx: ctx, t: t}
}

// route is e-1's only route.
func (o oneEvent) route() store.Route {
	o.t.Helper()
	rec, err := o.s.Event(o.ctx, "e-1")
	if err != nil || len(rec.Routes) != 1 {
		o.t.Fatalf("routes of e-1: %+v %v", rec.Routes, err)
	}
	return rec.Routes[0]
}

// settle settles r, marking e-1 dispatched.
func (o oneEvent) settle(r store.Route) {
	o.t.Helper()
	if _, err := o.s.Settle(o.ctx, store.Settlement{Routes: []store.Route{r}, Dispatched: []string{"e-1"}}); err != nil {
		o.t.Fatal(err)
	}
}

// requeue hands e-1 back from run j/c-1/o-1.
func (o oneEvent) requeue() {
	o.t.Helper()
	if err := o.s.Requeue(o.ctx, "j", "j/c-1/o-1", []string{"e-1"}); err != nil {
		o.t.Fatal(err)
	}
}
