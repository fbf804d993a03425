package ingest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// The shapes journeys (workflows/testdata/shapes): await waits up to 4 s
// for order.shipped after an order is placed, then takes "late".
const shapes = "../../workflows/testdata/shapes"

func customer(t *testing.T, ctx context.Context, d *ingest.Dispatcher, id string) journey.Customer {
	t.Helper()
	c := journey.Customer{ID: id, Email: id + "@example.no", Locale: "en", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
	if _, err := d.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func event(c journey.Customer, id, typ, order string, at time.Time) journey.Event {
	e := journey.Event{ID: id, Type: typ, CustomerID: c.ID, At: at, Data: map[string]any{"order_id": order}}
	if typ == "order.placed" {
		e.Data["total"] = 1.0
	}
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func result(t *testing.T, ctx context.Context, s *stacktest.Stack, id string) workflows.JourneyResult {
	t.Helper()
	var res workflows.JourneyResult
	if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return res
}

// TestEarlyEventReachesTheRunItConcerns: the shipment arrives before the
// order that starts the run. It used to be dropped ("no run in progress")
// and the run waited out its timeout; now it is parked and handed to the
// run when the order starts it.
func TestEarlyEventReachesTheRunItConcerns(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-early")
	now := time.Now().UTC()
	if _, err := s.Dispatcher.Event(ctx, event(c, "e-ship", "order.shipped", "o-1", now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dispatcher.Event(ctx, event(c, "e-order", "order.placed", "o-1", now)); err != nil {
		t.Fatal(err)
	}
	if res := result(t, ctx, s, workflows.WorkflowID("await", c.ID, "o-1")); res.Step != "done" {
		t.Fatalf("run ended at %q (%s), want done: the shipment that came first must count", res.Step, res.Outcome)
	}
}

// TestSignalToAnEndedRunStartsTheNextOne: a run was terminated without
// recording its end. The next order for the same key used to be signalled
// to a run that no longer existed and skipped, and journey_runs said
// "running" for ever; now the stale row is closed and a new run starts.
func TestSignalToAnEndedRunStartsTheNextOne(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-ended")
	id := workflows.WorkflowID("await", c.ID, "o-1")
	if _, err := s.Dispatcher.Event(ctx, event(c, "e-1", "order.placed", "o-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.TerminateWorkflow(ctx, id, "", "operator mistake"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Dispatcher.Event(ctx, event(c, "e-2", "order.placed", "o-1", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	started := false
	for _, o := range res.Journeys {
		started = started || (o.Journey == "await" && o.Action == "started")
	}
	if !started {
		t.Fatalf("second order: %+v, want a new await run started", res.Journeys)
	}
	if got := result(t, ctx, s, id); got.Outcome != journey.OutcomeExit {
		t.Fatalf("new run: %+v", got)
	}
	last, err := s.Store.LatestRun(ctx, "await", c.ID, "o-1")
	if err != nil || last.TriggerEventID != "e-2" || last.Open {
		t.Fatalf("latest run %+v %v", last, err)
	}
}

// TestSegmentEntryIsNeverLost: the customer enters a segment (loyalty
// points past 1,000: loyalty-benefit) while
// Temporal cannot be reached. The upsert used to fail after storing the
// customer, and the entry was lost for good (the next upsert finds the
// customer already in the segment); now the entry is stored with the
// customer and routed when Temporal is back.
func TestSegmentEntryIsNeverLost(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{})
	ctx := ctxFor(t, time.Minute)
	down := *s.Dispatcher
	down.Temporal = unreachable{s.Client}
	c := journey.Customer{ID: "c-segment", Email: "c-segment@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "loyalty_points": 1200}}
	if _, err := down.Customer(ctx, c); err != nil {
		t.Fatalf("upsert while Temporal is down: %v", err)
	}
	// The failed attempt backs off a second before the sweeper retries.
	for swept := 0; swept == 0; {
		n, err := s.Dispatcher.Sweep(ctx)
		if err != nil || ctx.Err() != nil {
			t.Fatalf("sweep: %v %v", err, ctx.Err())
		}
		swept += n
		time.Sleep(200 * time.Millisecond)
	}
	id := workflows.WorkflowID("loyalty-benefit", c.ID, "")
	if _, err := s.Client.DescribeWorkflowExecution(ctx, id, ""); err != nil {
		t.Fatalf("loyalty-benefit (segment entry) did not start: %v", err)
	}
}

// TestKeyTooLongForARunIsRefusedAtTheDoor: an event whose key would make a
// workflow id Temporal refuses used to be accepted (202) and then fail
// routing for ever; it is invalid.
func TestKeyTooLongForARunIsRefusedAtTheDoor(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-long")
	long := strings.Repeat("k", 2000)
	res, err := s.Dispatcher.Accept(ctx, []journey.Event{event(c, "e-long", "order.placed", long, time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != ingest.StatusInvalid || !strings.Contains(res[0].Error, "key") {
		t.Fatalf("result %+v, want invalid naming the key", res[0])
	}
	if _, err := s.Dispatcher.Event(ctx, event(c, "e-long-2", "order.placed", long, time.Now())); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("Event: %v, want ErrInvalid", err)
	}
}

// TestARetriedEventIsRoutedAtOnce: a replica stored an event and died (or
// hung) before routing it, so its client got no answer and sent the event
// again to another replica. That replica used to answer "duplicate" and
// leave the event to the sweeper, seconds later, while the customer's next
// event, sent once this one was answered, went straight to the run: the
// run got them in the wrong order (the replica failover fault test saw it).
// The retry is the client asking again: it is routed now.
func TestARetriedEventIsRoutedAtOnce(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-retried")
	placed := event(c, "e-retried", "order.placed", "o-1", time.Now().UTC())
	// The replica that died: the event is stored, not routed.
	if _, err := s.Store.AcceptEvents(ctx, []journey.Event{placed}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Dispatcher.Accept(ctx, []journey.Event{placed})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != ingest.StatusDuplicate {
		t.Fatalf("retry: %+v, want duplicate", res[0])
	}
	rec, err := s.Store.Event(ctx, placed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status() != "routed" {
		t.Fatalf("after the retry was answered the event is %s, want routed: the client's next event would overtake it", rec.Status())
	}
	if _, err := s.Client.DescribeWorkflowExecution(ctx, workflows.WorkflowID("await", c.ID, "o-1"), ""); err != nil {
		t.Fatalf("the retried event started no run: %v", err)
	}
	if len(rec.Routes) == 0 {
		t.Fatal("the routed event has no routes")
	}
	// A retry of an event routed before is not routed again.
	res, err = s.Dispatcher.Accept(ctx, []journey.Event{placed})
	if err != nil || res[0].Status != ingest.StatusDuplicate {
		t.Fatalf("second retry: %+v %v", res, err)
	}
	again, err := s.Store.Event(ctx, placed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(again.Routes, rec.Routes, func(a, b store.Route) bool { return a.RoutedAt.Equal(b.RoutedAt) }) {
		t.Fatalf("routes after a retry of a routed event %+v, want %+v untouched", again.Routes, rec.Routes)
	}
}

// counting counts what Temporal is asked about runs: starts, signals,
// descriptions.
type counting struct {
	client.Client
	calls atomic.Int64
}

func (c *counting) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	c.calls.Add(1)
	return c.Client.ExecuteWorkflow(ctx, o, wf, args...)
}

func (c *counting) SignalWorkflow(ctx context.Context, id, run, sig string, arg any) error {
	c.calls.Add(1)
	return c.Client.SignalWorkflow(ctx, id, run, sig, arg)
}

func (c *counting) DescribeWorkflowExecution(ctx context.Context, id, run string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	c.calls.Add(1)
	return c.Client.DescribeWorkflowExecution(ctx, id, run)
}

// TestAnEventTwiceInOneBatchIsRoutedOnce: the same event offered twice in
// one request is stored once and routed once; its second copy is a
// duplicate of one this request routes, not a retry of one left behind.
func TestAnEventTwiceInOneBatchIsRoutedOnce(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	ctx := ctxFor(t, time.Minute)
	c := customer(t, ctx, s.Dispatcher, "c-twice")
	temporal := &counting{Client: s.Client}
	d := *s.Dispatcher
	d.Temporal = temporal
	placed := event(c, "e-twice", "order.placed", "o-1", time.Now().UTC())
	res, err := d.Accept(ctx, []journey.Event{placed, placed})
	if err != nil || res[0].Status != ingest.StatusAccepted || res[1].Status != ingest.StatusDuplicate {
		t.Fatalf("accept: %+v %v", res, err)
	}
	// order.placed starts await and nudge: two calls, once each.
	if n := temporal.calls.Load(); n != 2 {
		t.Fatalf("%d calls to Temporal for one event that starts two runs, want 2", n)
	}
}

// unreachable is Temporal when it cannot be reached.
type unreachable struct{ client.Client }

var errDown = serviceerror.NewUnavailable("temporal is unreachable")

func (unreachable) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, errDown
}

func (unreachable) SignalWorkflow(context.Context, string, string, string, any) error { return errDown }

func (unreachable) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return nil, errDown
}
