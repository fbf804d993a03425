package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// shapes: await waits up to 4 s for order.shipped after order.placed.
const shapes = "../../workflows/testdata/shapes"

// flaky is Temporal failing for the customers in down.
type flaky struct {
	client.Client
	mu   sync.Mutex
	down map[string]bool
	// calls counts starts.
	calls atomic.Int64
}

func (f *flaky) broken(workflowID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.down {
		if strings.Contains(workflowID, "/"+c+"/") || strings.HasSuffix(workflowID, "/"+c) {
			return true
		}
	}
	return false
}

func (f *flaky) heal() {
	f.mu.Lock()
	f.down = nil
	f.mu.Unlock()
}

func (f *flaky) ExecuteWorkflow(ctx context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.calls.Add(1)
	if f.broken(o.ID) {
		return nil, serviceerror.NewUnavailable("temporal is unreachable for " + o.ID)
	}
	return f.Client.ExecuteWorkflow(ctx, o, wf, args...)
}

func (f *flaky) SignalWorkflow(ctx context.Context, id, run, sig string, arg any) error {
	if f.broken(id) {
		return serviceerror.NewUnavailable("temporal is unreachable for " + id)
	}
	return f.Client.SignalWorkflow(ctx, id, run, sig, arg)
}

type bundle struct {
	s      *stacktest.Stack
	router *dispatch.Router
	flaky  *flaky
}

func setup(t *testing.T) bundle {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Journeys: shapes})
	f := &flaky{Client: s.Client, down: map[string]bool{}}
	r := &dispatch.Router{Store: s.Store, Temporal: f, Catalog: s.Catalog, Log: s.Log, TaskQueue: s.TaskQueue, MaxAttempts: 3}
	return bundle{s: s, router: r, flaky: f}
}

func (b bundle) customer(t *testing.T, id string) journey.Customer {
	t.Helper()
	c := journey.Customer{ID: id, Email: id + "@example.no", Locale: "en", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
	if _, err := b.s.Store.UpsertCustomer(context.Background(), c, "test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// store puts events in the outbox without routing them, as a replica that
// died right after accepting them leaves them.
func (b bundle) store(t *testing.T, evs ...journey.Event) {
	t.Helper()
	if _, err := b.s.Store.AcceptEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func placed(c journey.Customer, id, order string, at time.Time) journey.Event {
	return journey.Event{ID: id, Type: "order.placed", CustomerID: c.ID, At: at, Data: map[string]any{"order_id": order, "total": 1.0}}
}

func shipped(c journey.Customer, id, order string, at time.Time) journey.Event {
	return journey.Event{ID: id, Type: "order.shipped", CustomerID: c.ID, At: at, Data: map[string]any{"order_id": order}}
}

func sweepUntil(t *testing.T, ctx context.Context, r *dispatch.Router, lane string, done func() bool) {
	t.Helper()
	for !done() {
		if _, err := r.SweepLane(ctx, lane, dispatch.SweepOptions{Grace: time.Nanosecond}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("gave up waiting")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func record(t *testing.T, st *store.Store, id string) store.EventRecord {
	t.Helper()
	r, err := st.Event(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPoisonEventIsDeadLetteredAndHoldsUpNoOneElse: an event that cannot
// be routed is retried with backoff and dead-lettered after MaxAttempts,
// with its error kept once; its customer's later event waits behind it
// (order), nobody else's does; retry after the cause is fixed routes both.
func TestPoisonEventIsDeadLetteredAndHoldsUpNoOneElse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sick, well := b.customer(t, "c-sick"), b.customer(t, "c-well")
	b.flaky.down["c-sick"] = true
	now := time.Now()
	b.store(t, placed(sick, "s-1", "o-1", now), shipped(sick, "s-2", "o-1", now.Add(time.Second)), placed(well, "w-1", "o-2", now))
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool { return record(t, b.s.Store, "s-1").Status() == "dead" })
	if got := record(t, b.s.Store, "w-1"); got.Status() != "routed" {
		t.Fatalf("the other customer's event is %s, want routed", got.Status())
	}
	dead := record(t, b.s.Store, "s-1")
	if dead.Attempts != 3 || !strings.Contains(dead.Error, "unreachable") || len(dead.Error) > 500 {
		t.Fatalf("dead letter %+v", dead)
	}
	if got := record(t, b.s.Store, "s-2"); got.Status() != "pending" || got.Attempts != 0 {
		t.Fatalf("the sick customer's later event is %s after %d attempts; want pending behind the dead one", got.Status(), got.Attempts)
	}
	letters, err := b.s.Store.DeadEvents(ctx, 10)
	if err != nil || len(letters) != 1 || letters[0].Event.ID != "s-1" {
		t.Fatalf("dead letters %+v %v", letters, err)
	}
	// The customer's next event no longer waits behind a dead letter.
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool { return record(t, b.s.Store, "s-2").Attempts > 0 })
	b.flaky.heal()
	if ok, err := b.s.Store.RetryEvent(ctx, "s-1"); !ok || err != nil {
		t.Fatalf("retry: %v %v", ok, err)
	}
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool {
		return record(t, b.s.Store, "s-1").Status() == "routed" && record(t, b.s.Store, "s-2").Status() == "routed"
	})
	var res workflows.JourneyResult
	if err := b.s.Client.GetWorkflow(ctx, workflows.WorkflowID("await", sick.ID, "o-1"), "").Get(ctx, &res); err != nil || res.Step != "done" {
		t.Fatalf("run %+v %v, want done (the shipment counted)", res, err)
	}
	if ok, err := b.s.Store.DropEvent(ctx, "nope", "x"); ok || err != nil {
		t.Fatalf("drop of an unknown event: %v %v", ok, err)
	}
}

// TestParkedEventWithoutARunIsUnmatched: an event for a run that never
// starts is kept for ParkFor, then recorded as unmatched with the reason.
func TestParkedEventWithoutARunIsUnmatched(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.ParkFor = 300 * time.Millisecond
	ctx := context.Background()
	c := b.customer(t, "c-lonely")
	ev := shipped(c, "e-lonely", "o-9", time.Now())
	b.store(t, ev)
	res, err := b.router.Route(ctx, ev)
	if err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionParked {
		t.Fatalf("route %+v %v, want await's parked", res, err)
	}
	time.Sleep(2500 * time.Millisecond) // Waiting looks at routes parked 2 s or more
	if _, err := b.router.Waiting(ctx, 100); err != nil {
		t.Fatal(err)
	}
	rec := record(t, b.s.Store, "e-lonely")
	var got store.Route
	for _, r := range rec.Routes {
		if r.JourneyID == "await" {
			got = r
		}
	}
	if got.Action != dispatch.ActionUnmatched || !strings.Contains(got.Reason, "no run of await") {
		t.Fatalf("routes %+v, want await's unmatched with a reason", rec.Routes)
	}
}

// awaitRoute is the await journey's outcome (order.shipped also starts
// push-first).
func awaitRoute(os []dispatch.Outcome) dispatch.Outcome {
	for _, o := range os {
		if o.Journey == "await" {
			return o
		}
	}
	return dispatch.Outcome{}
}

// TestReconcilerClosesRunsTemporalEnded: a run terminated without
// recording its end is closed with what Temporal says of it.
func TestReconcilerClosesRunsTemporalEnded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c := b.customer(t, "c-term")
	ev := placed(c, "e-term", "o-1", time.Now())
	b.store(t, ev)
	if _, err := b.router.Route(ctx, ev); err != nil {
		t.Fatal(err)
	}
	id := workflows.WorkflowID("await", c.ID, "o-1")
	if err := b.s.Client.TerminateWorkflow(ctx, id, "", "operator mistake"); err != nil {
		t.Fatal(err)
	}
	n, err := b.router.Reconcile(ctx, 0, 100)
	if err != nil || n < 1 {
		t.Fatalf("reconciled %d %v", n, err)
	}
	last, err := b.s.Store.LatestRun(ctx, "await", c.ID, "o-1")
	if err != nil || last.Open {
		t.Fatalf("run %+v %v, want closed", last, err)
	}
}

// TestRequeuedEventStartsTheNextRun: events a finishing run hands back are
// routed again once it closed: a trigger starts the next run.
func TestRequeuedEventStartsTheNextRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-requeue")
	first := placed(c, "e-first", "o-1", time.Now())
	b.store(t, first)
	if _, err := b.router.Route(ctx, first); err != nil {
		t.Fatal(err)
	}
	id := workflows.WorkflowID("await", c.ID, "o-1")
	if err := b.s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// A second order arrived as the first run finished, which handed it
	// back (what the workflow's drain does).
	second := placed(c, "e-second", "o-1", time.Now())
	b.store(t, second)
	if err := b.s.Store.MarkEventsDispatched(ctx, []string{second.ID}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Store.Requeue(ctx, "await", id, []string{second.ID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := b.router.Waiting(ctx, 100); err != nil {
		t.Fatal(err)
	}
	last, err := b.s.Store.LatestRun(ctx, "await", c.ID, "o-1")
	if err != nil || last.TriggerEventID != "e-second" {
		t.Fatalf("latest run %+v %v, want the second order's", last, err)
	}
}

// TestSweeperRoutesWhatAReplicaLeftBehind: events a replica accepted and
// died before routing are routed by the sweeper after the grace period,
// live ones before bulk ones.
func TestSweeperRoutesWhatAReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-left")
	ev := placed(c, "e-left", "o-1", time.Now())
	b.store(t, ev)
	sw := &dispatch.Sweeper{Router: b.router, Options: dispatch.SweepOptions{Grace: 200 * time.Millisecond}, Idle: 50 * time.Millisecond}
	out, err := sw.Sweep(ctx, workflows.SweepActivityInput{For: 2 * time.Second})
	if err != nil || out.Live != 1 {
		t.Fatalf("sweep %+v %v, want one live event", out, err)
	}
	if got := record(t, b.s.Store, "e-left"); got.Status() != "routed" || len(got.Routes) != 2 {
		t.Fatalf("event %+v", got)
	}
}

// stuck is Temporal never answering a start until released.
type stuck struct {
	client.Client
	entered chan struct{}
	release chan struct{}
}

func (s *stuck) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return nil, serviceerror.NewUnavailable("released")
}

// TestHungSweeperGivesUpItsEventsSoon: a sweeper claims a batch and stops
// in the middle of it. Another sweeper (Temporal retries the sweeper's
// activity elsewhere within seconds) must route the batch within the 10 s
// a hung replica may delay anyone's events, not when the first one's claim
// runs out. The first sweeper's context ends and its call stays stuck:
// that stops it as a hung process (SIGSTOP) stops it.
//
// Fails before claims were short and renewed: the batch was leased for a
// minute, and the second sweeper found nothing to route.
func TestHungSweeperGivesUpItsEventsSoon(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.customer(t, "c-hung")
	ev := placed(c, "e-hung", "o-1", time.Now())
	b.store(t, ev)
	arrived := time.Now()
	hung := *b.router
	s := &stuck{Client: b.s.Client, entered: make(chan struct{}, 1), release: make(chan struct{})}
	hung.Temporal = s
	hctx, freeze := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = hung.SweepLane(hctx, store.LaneLive, dispatch.SweepOptions{Grace: time.Nanosecond})
	}()
	defer func() { close(s.release); <-done }()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first sweeper did not take the event")
	}
	freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for record(t, b.s.Store, "e-hung").Status() != "routed" {
		if _, err := b.router.SweepLane(ctx, store.LaneLive, dispatch.SweepOptions{Grace: time.Nanosecond}); err != nil {
			t.Fatalf("the second sweeper: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the event was not routed %s after it arrived: the hung sweeper still holds it", time.Since(arrived).Round(time.Second))
		case <-time.After(250 * time.Millisecond):
		}
	}
	if d := time.Since(arrived); d > 10*time.Second {
		t.Fatalf("routed %s after it arrived, want within 10 s", d.Round(100*time.Millisecond))
	}
	t.Logf("routed %s after it arrived, by the second sweeper", time.Since(arrived).Round(100*time.Millisecond))
}

// TestSlowBatchKeepsItsClaim: a sweeper alive but slow (Temporal takes
// longer than a lease to answer) renews its claim, so another pass does
// not route the same events meanwhile.
func TestSlowBatchKeepsItsClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.customer(t, "c-slow")
	b.store(t, placed(c, "e-slow", "o-1", time.Now()))
	slow := *b.router
	s := &stuck{Client: b.s.Client, entered: make(chan struct{}, 1), release: make(chan struct{})}
	slow.Temporal = s
	const lease = time.Second
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = slow.SweepLane(context.Background(), store.LaneLive, dispatch.SweepOptions{Grace: time.Nanosecond, Lease: lease})
	}()
	defer func() { close(s.release); <-done }()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first sweeper did not take the event")
	}
	for end := time.Now().Add(4 * lease); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		n, err := b.router.SweepLane(context.Background(), store.LaneLive, dispatch.SweepOptions{Grace: time.Nanosecond, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Fatal("another pass took the event while the first was still routing it")
		}
	}
}

// TestLateStartOfAFinishedEntryStartsNothing: a replica records a run
// for an event and hangs before its SignalWithStart; the sweeper starts
// the run, which sends and finishes; then the replica wakes and makes its
// call. The workflow id is free again and reentry needs Temporal to allow
// a new run under it, so Temporal starts a second run of the same entry.
// It must see that the entry's run has finished and end without sending
// anything: the customer hears once.
//
// Fails before runs claimed their entry: the second run sent the journey
// again (its first message and, on timeout, the second).
func TestLateStartOfAFinishedEntryStartsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-late")
	ev := placed(c, "e-late", "o-1", time.Now())
	b.store(t, ev)
	j, _ := b.s.Catalog.Journey("await")
	wid := workflows.WorkflowID(j.ID, c.ID, "o-1")
	// The replica records the run and hangs.
	_, row, recorded, err := b.s.Store.LatestRunOrRecord(ctx, wid, j.ID, j.Version, c.ID, "o-1", ev.ID)
	if err != nil || !recorded {
		t.Fatalf("record the run: recorded %v, %v", recorded, err)
	}
	// The sweeper starts it; the shipment ends it.
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool { return record(t, b.s.Store, ev.ID).Status() == "routed" })
	b.store(t, shipped(c, "e-late-shipped", "o-1", time.Now()))
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool { return record(t, b.s.Store, "e-late-shipped").Status() == "routed" })
	first := b.s.Client.GetWorkflow(ctx, wid, "")
	if err := first.Get(ctx, nil); err != nil {
		t.Fatalf("the entry's run: %v", err)
	}
	// The replica wakes and makes the call it was about to make.
	in := workflows.JourneyInput{Bundle: j.Bundle(), JourneyID: j.ID, Version: j.Version, CustomerID: c.ID, Key: "o-1",
		Trigger: &ev, EntryID: ev.ID, Customer: &c, ReorderWindow: time.Second}
	late, err := b.s.Client.SignalWithStartWorkflow(ctx, wid, workflows.SignalEvent, ev, client.StartWorkflowOptions{
		ID: wid, TaskQueue: b.s.TaskQueue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo: map[string]any{"entry": ev.ID}}, workflows.JourneyWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	if late.GetRunID() == first.GetRunID() {
		t.Fatal("Temporal did not start a second run: the test proves nothing")
	}
	var res workflows.JourneyResult
	if err := late.Get(ctx, &res); err != nil {
		t.Fatalf("the late run: %v", err)
	}
	if res.Outcome != workflows.OutcomeSecondStart {
		t.Errorf("the late run ended %+v, want outcome %s", res, workflows.OutcomeSecondStart)
	}
	// The replica then settles what it believes it started: the row keeps
	// the id of the run that really was the entry's.
	if _, err := b.s.Store.Settle(ctx, store.Settlement{Started: []store.StartedRun{{Row: row, RunID: late.GetRunID(), WorkflowID: wid}}}); err != nil {
		t.Fatal(err)
	}
	if run, err := b.s.Store.RunByEntry(ctx, j.ID, ev.ID); err != nil || run.RunID != first.GetRunID() {
		t.Errorf("the entry's row names run %q (%v), want the entry's run %s", run.RunID, err, first.GetRunID())
	}
	time.Sleep(500 * time.Millisecond)
	var to []string
	for _, m := range b.s.Catcher.Messages() {
		if key := m.Header.Get("X-Lojal-Key"); slices.Contains(m.To, c.Email) && strings.HasPrefix(key, wid+"@") {
			to = append(to, key)
		}
	}
	if len(to) != 1 {
		t.Fatalf("the customer got %d messages of the journey %q, want 1", len(to), to)
	}
}

// TestBulkLaneIsPaced: the sweeper routes bulk events (a scheduled
// enrolment) no faster than BulkRate, so that an enrolment is a steady
// stream beside live traffic rather than a flood of run starts.
func TestBulkLaneIsPaced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var evs []journey.Event
	for i := range 60 {
		c := b.customer(t, fmt.Sprintf("c-bulk-%02d", i))
		evs = append(evs, placed(c, fmt.Sprintf("e-bulk-%02d", i), "o-1", time.Now()))
	}
	if _, err := b.s.Store.AcceptEventsIn(ctx, store.LaneBulk, evs); err != nil {
		t.Fatal(err)
	}
	sw := &dispatch.Sweeper{Router: b.router, Idle: 20 * time.Millisecond,
		Options: dispatch.SweepOptions{Grace: time.Nanosecond, Batch: 10, BulkRate: 10}}
	out, err := sw.Sweep(ctx, workflows.SweepActivityInput{For: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A first batch of 10 at once, then 10 a second: about 30 in 2 s.
	if out.Bulk < 15 || out.Bulk > 35 {
		t.Fatalf("routed %d bulk events in 2 s at 10 a second (batches of 10), want about 30", out.Bulk)
	}
}

// TestSweepLeavesBulkWorkToItsSuccessor: in the end of its stretch a
// sweep runs beside its successor (workflows.SweepOverlap); there it
// routes live events only, so that an enrolment is not routed at twice
// its rate and waiting routes are not looked at twice.
func TestSweepLeavesBulkWorkToItsSuccessor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	enrolled := b.customer(t, "c-tail-bulk")
	if _, err := b.s.Store.AcceptEventsIn(ctx, store.LaneBulk, []journey.Event{placed(enrolled, "e-tail-bulk", "o-1", time.Now())}); err != nil {
		t.Fatal(err)
	}
	live := b.customer(t, "c-tail-live")
	b.store(t, placed(live, "e-tail-live", "o-1", time.Now()))
	sw := &dispatch.Sweeper{Router: b.router, Idle: 20 * time.Millisecond, Options: dispatch.SweepOptions{Grace: time.Nanosecond}}
	out, err := sw.Sweep(ctx, workflows.SweepActivityInput{For: time.Second, LiveOnly: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if out.Live != 1 || out.Bulk != 0 || out.Waiting != 0 || out.Reconciled != 0 {
		t.Fatalf("a sweep's shared end did %+v, want the live event and nothing else", out)
	}
	// Its successor's own stretch does the rest.
	if out, err = sw.Sweep(ctx, workflows.SweepActivityInput{For: time.Second, LiveOnly: 0}); err != nil || out.Bulk != 1 {
		t.Fatalf("the next sweep did %+v %v, want the enrolment", out, err)
	}
}

// TestHandedBackToAGoneJourney: an event a run handed back is routed
// again to that journey only; when the journey is no longer deployed (or
// no longer takes the event), routing it again found nothing, recorded
// nothing, and the route came back every second, forever, ahead of every
// newer hand-back. It is recorded as skipped, and left alone.
func TestHandedBackToAGoneJourney(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-gone")
	ev := placed(c, "e-gone", "o-1", time.Now())
	b.store(t, ev)
	if err := b.s.Store.Requeue(ctx, "retired-journey", "retired-journey/c-gone/o-1", []string{ev.ID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // hand-backs wait 2 s
	if n, err := b.router.Waiting(ctx, 100); err != nil || n != 1 {
		t.Fatalf("waiting: %d %v, want the hand-back looked at", n, err)
	}
	var route store.Route
	for _, r := range record(t, b.s.Store, ev.ID).Routes {
		if r.JourneyID == "retired-journey" {
			route = r
		}
	}
	if route.Action != dispatch.ActionSkipped {
		t.Fatalf("the hand-back to a gone journey is %+v, want skipped", route)
	}
	if n, err := b.router.Waiting(ctx, 100); err != nil || n != 0 {
		t.Fatalf("waiting again: %d %v, want nothing left to look at", n, err)
	}
}

// TestRequestPathStopsCallingAnAbsentTemporal: in the request path, once
// a call finds Temporal away the batch's other events are not routed
// (each call would wait seconds, and a batch for many customers would
// outlast its client); they are failed at once, to be retried in order.
// The sweeper still calls for every event: Temporal can be away for some
// workflows only, and other customers must not wait for them.
func TestRequestPathStopsCallingAnAbsentTemporal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.router.Parallel = 1
	var answering, sweeping []journey.Event
	for i := range 10 {
		c := b.customer(t, fmt.Sprintf("c-away-%02d", i))
		b.flaky.down[c.ID] = true
		answering = append(answering, placed(c, fmt.Sprintf("e-away-%02d", i), "o-1", time.Now()))
		sweeping = append(sweeping, placed(c, fmt.Sprintf("e-away-s%02d", i), "o-2", time.Now()))
	}
	b.store(t, answering...)
	b.store(t, sweeping...)
	if _, err := b.router.AcceptAndRoute(ctx, answering); err != nil {
		t.Fatal(err)
	}
	if n := b.flaky.calls.Load(); n != 1 {
		t.Fatalf("the request path called Temporal %d times for 10 customers while it was away, want once", n)
	}
	last := record(t, b.s.Store, "e-away-09")
	if last.Attempts != 1 || !strings.Contains(last.Error, "did not answer") {
		t.Fatalf("an event not routed because Temporal was away: %+v, want a failed attempt saying why", last)
	}
	b.flaky.calls.Store(0)
	b.router.RouteAll(ctx, sweeping)
	if n := b.flaky.calls.Load(); n != 10 {
		t.Fatalf("the sweeper called Temporal %d times for 10 customers, want 10", n)
	}
}

// TestOutcomeEventMarksTheRun: the journey declares an outcome (the
// customer pays within 30 days). The payment comes after the run ended;
// it is not routed to any run, and the report counts the run as having
// reached it.
func TestOutcomeEventMarksTheRun(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/outcome"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := journey.Customer{ID: "c-paid", Email: "c-paid@example.no", Locale: "en", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
	if _, err := s.Store.UpsertCustomer(ctx, c, "test"); err != nil {
		t.Fatal(err)
	}
	r := &dispatch.Router{Store: s.Store, Temporal: s.Client, Catalog: s.Catalog, Log: s.Log, TaskQueue: s.TaskQueue}
	start := journey.Event{ID: "e-start", Type: "trial.started", CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"trial_id": "t-1"}}
	if _, err := r.Route(ctx, start); err != nil {
		t.Fatal(err)
	}
	if err := s.Client.GetWorkflow(ctx, workflows.WorkflowID("trial", c.ID, ""), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	paid := journey.Event{ID: "e-paid", Type: "trial.paid", CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"trial_id": "t-1"}}
	res, err := r.Route(ctx, paid)
	if err != nil || len(res.Journeys) != 0 {
		t.Fatalf("the payment was routed: %+v %v; want it counted, not routed", res.Journeys, err)
	}
	rep, err := s.Store.JourneyReport(ctx, start.At.Add(-time.Hour), start.At.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 1 || rep[0].Treated.Goals+rep[0].HeldOut.Goals != 1 {
		t.Fatalf("report %+v, want the one run counted as having reached its outcome", rep)
	}
}

// signals counts the signals in the history of a workflow's run (its
// current run when runID is empty).
func signals(t *testing.T, ctx context.Context, tc client.Client, workflowID, runID string) int {
	t.Helper()
	n := 0
	iter := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			n++
		}
	}
	return n
}

// TestANewRunStartsWithoutASignal: a run that routing recorded as new
// is started with its trigger in its input alone. SignalWithStart also
// wrote the trigger to the run's history as a signal, which the run
// drops as already seen: a history event, a billed action and the
// event's bytes more per run, and more of the Temporal server's CPU per
// call (bare starts ran 9 to 18% faster than bare SignalWithStarts on the
// dev server). The run does what it did: the shipment completes it.
func TestANewRunStartsWithoutASignal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-new")
	ev := placed(c, "e-new", "o-1", time.Now())
	b.store(t, ev)
	res, err := b.router.Route(ctx, ev)
	if err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionStarted {
		t.Fatalf("route %+v %v, want await started", res, err)
	}
	wid := workflows.WorkflowID("await", c.ID, "o-1")
	if n := signals(t, ctx, b.s.Client, wid, ""); n != 0 {
		t.Fatalf("the new run's history has %d signals, want none: its trigger is in its input", n)
	}
	sh := shipped(c, "e-new-shipped", "o-1", time.Now())
	b.store(t, sh)
	if res, err := b.router.Route(ctx, sh); err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionSignalled {
		t.Fatalf("route the shipment: %+v %v, want await signalled", res, err)
	}
	var out workflows.JourneyResult
	if err := b.s.Client.GetWorkflow(ctx, wid, "").Get(ctx, &out); err != nil || out.Step != "done" {
		t.Fatalf("run %+v %v, want done (the shipment counted)", out, err)
	}
}

// waitForShipment waits until the await run of wid has claimed its entry
// and waits for the shipment (for 4 s).
func waitForShipment(t *testing.T, ctx context.Context, tc client.Client, wid string) {
	t.Helper()
	for {
		v, err := tc.QueryWorkflow(ctx, wid, "", workflows.QueryState)
		var info workflows.RunInfo
		if err == nil && v.Get(&info) == nil && info.State.Current.Kind == journey.ActAwait {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the run never waited for the shipment")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestANewRunWaitsForItsFinishingPredecessor: a run has recorded its end
// (here its row is closed while the run still waits, which stretches the
// moment between a run's record and its end in Temporal to seconds) when
// the customer's next order with the same key comes. The next order's
// run must start under its own entry once the previous run has ended.
// Before, the start found the workflow id taken and gave the order to the
// finishing run as a signal; that run dropped it or handed it back, the
// new entry's row took the finishing run's id, and the next order's run
// never started.
func TestANewRunWaitsForItsFinishingPredecessor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.MaxAttempts = 10 // the previous run waits up to 4 s: three attempts' backoff is shorter
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wid, prev, next := waitingEntry(t, ctx, b, "c-ending")
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool { return record(t, b.s.Store, next.ID).DispatchedAt != nil })

	run, err := b.s.Store.RunByEntry(ctx, "await", next.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.RunID == "" || run.RunID == prev.RunID || !run.Open {
		t.Fatalf("the next order's run %+v: want its own open run, not the previous run %s", run, prev.RunID)
	}
	desc, err := b.s.Client.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		t.Fatal(err)
	}
	if info := desc.GetWorkflowExecutionInfo(); info.GetFirstRunId() != run.RunID ||
		info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("Temporal's current run %s (%s), want the next order's run %s running", info.GetFirstRunId(), info.GetStatus(), run.RunID)
	}
	if n := signals(t, ctx, b.s.Client, wid, ""); n != 0 {
		t.Fatalf("the next order's run got %d signals, want none: the order is in its input", n)
	}
}

// TestAHandBackWaitsForItsFinishingRunAlone: a finishing run handed an
// order back, and the order's new run cannot start until that run has
// ended. The pass over waiting routes leaves it for a later pass and goes
// on with the others (here another customer's parked event whose time is
// up); the order then starts its own run. Fails on a pass that stops at
// the first route it cannot settle.
func TestAHandBackWaitsForItsFinishingRunAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.ParkFor = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.customer(t, "c-handback")
	first := placed(c, "e-handback-1", "o-1", time.Now())
	b.store(t, first)
	if res, err := b.router.Route(ctx, first); err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionStarted {
		t.Fatalf("route %+v %v, want await started", res, err)
	}
	wid := workflows.WorkflowID("await", c.ID, "o-1")
	waitForShipment(t, ctx, b.s.Client, wid)
	j, _ := b.s.Catalog.Journey("await")
	prev, err := b.s.Store.RunByEntry(ctx, j.ID, first.ID)
	if err != nil || prev.RunID == "" {
		t.Fatalf("the first run's row %+v %v", prev, err)
	}
	// The run recorded its end, and handed back the next order that
	// reached it meanwhile; it has not ended in Temporal yet.
	if closed, err := b.s.Store.CloseRun(ctx, prev.ID, "completed"); err != nil || !closed {
		t.Fatalf("close the run's row: %v %v", closed, err)
	}
	next := placed(c, "e-handback-2", "o-1", time.Now())
	b.store(t, next)
	if err := b.s.Store.MarkEventsDispatched(ctx, []string{next.ID}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Store.Requeue(ctx, "await", wid, []string{next.ID}); err != nil {
		t.Fatal(err)
	}
	other := b.customer(t, "c-parked")
	early := shipped(other, "e-parked", "o-9", time.Now())
	b.store(t, early)
	if res, err := b.router.Route(ctx, early); err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionParked {
		t.Fatalf("route %+v %v, want await parked", res, err)
	}
	time.Sleep(2100 * time.Millisecond) // hand-backs wait 2 s

	if _, err := b.router.Waiting(ctx, 100); err != nil {
		t.Fatalf("waiting routes: %v", err)
	}
	if desc, err := b.s.Client.DescribeWorkflowExecution(ctx, wid, ""); err != nil ||
		desc.GetWorkflowExecutionInfo().GetFirstRunId() != prev.RunID ||
		desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("the first run ended before the pass (%s %s, %v): the test proves nothing on a machine this slow",
			desc.GetWorkflowExecutionInfo().GetFirstRunId(), desc.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	var parked store.Route
	for _, r := range record(t, b.s.Store, early.ID).Routes {
		if r.JourneyID == "await" {
			parked = r
		}
	}
	if parked.Action != dispatch.ActionUnmatched {
		t.Fatalf("the other customer's parked event is %q after the pass, want unmatched: the hand-back held it up", parked.Action)
	}

	if err := b.s.Client.GetWorkflow(ctx, wid, prev.RunID).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := b.router.Waiting(ctx, 100); err != nil {
			t.Fatal(err)
		}
		run, err := b.s.Store.RunByEntry(ctx, j.ID, next.ID)
		if err == nil && run.RunID != "" {
			if run.RunID == prev.RunID {
				t.Fatalf("the handed-back order's run is the run that handed it back (%s)", prev.RunID)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the handed-back order never started its run: %+v %v", run, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitingEntry sets up a customer's next order whose run waits for the
// previous run under its id to end: the previous run recorded its end
// (its row is closed) and still waits for a shipment in Temporal, and
// routing the next order recorded its entry and failed to start it.
func waitingEntry(t *testing.T, ctx context.Context, b bundle, customer string) (wid string, prev store.Run, next journey.Event) {
	t.Helper()
	c := b.customer(t, customer)
	first := placed(c, customer+"-1", "o-1", time.Now())
	b.store(t, first)
	if res, err := b.router.Route(ctx, first); err != nil || awaitRoute(res.Journeys).Action != dispatch.ActionStarted {
		t.Fatalf("route %+v %v, want await started", res, err)
	}
	wid = workflows.WorkflowID("await", c.ID, "o-1")
	waitForShipment(t, ctx, b.s.Client, wid)
	prev, err := b.s.Store.RunByEntry(ctx, "await", first.ID)
	if err != nil || prev.RunID == "" {
		t.Fatalf("the first run's row %+v %v", prev, err)
	}
	if closed, err := b.s.Store.CloseRun(ctx, prev.ID, "completed"); err != nil || !closed {
		t.Fatalf("close the run's row: %v %v", closed, err)
	}
	next = placed(c, customer+"-2", "o-1", time.Now())
	b.store(t, next)
	if routed := b.router.RouteAll(ctx, []journey.Event{next}); !errors.Is(routed[0].Err, dispatch.ErrPreviousRunFinishing) {
		t.Fatalf("routing the next order: %v, want ErrPreviousRunFinishing", routed[0].Err)
	}
	return wid, prev, next
}

// TestReconcilerKeepsAnEntryWaitingForItsPredecessor: the reconciler
// must not close the row of an entry whose run waits for the previous run
// under its id, however long that takes (a worker outage): it took that
// run for a later one that replaced it, and the entry's retry then found
// its row closed and skipped the event.
func TestReconcilerKeepsAnEntryWaitingForItsPredecessor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, next := waitingEntry(t, ctx, b, "c-reconcile-wait")
	b.router.Now = func() time.Time { return time.Now().Add(6 * time.Minute) }
	if _, err := b.router.Reconcile(ctx, 0, 100); err != nil {
		t.Fatal(err)
	}
	b.router.Now = nil
	run, err := b.s.Store.RunByEntry(ctx, "await", next.ID)
	if err != nil || !run.Open {
		t.Fatalf("the waiting entry's row %+v %v: want it open", run, err)
	}
}

// TestAnotherTriggerWaitsForTheWaitingEntry: while an entry's run waits
// for the previous run under its id, another trigger for the same key
// (a hand-back, an event of the other lane) must not be signalled to that
// previous run, which drops it or hands it back; it goes to the entry's
// run once that has started.
func TestAnotherTriggerWaitsForTheWaitingEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.router.MaxAttempts = 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wid, prev, next := waitingEntry(t, ctx, b, "c-third")
	third := placed(journey.Customer{ID: "c-third"}, "c-third-3", "o-1", time.Now())
	b.store(t, third)
	_, err := b.router.Route(ctx, third)
	if err == nil {
		t.Fatal("the third order was routed while its run waits for the previous one")
	}
	if err := b.s.Client.GetWorkflow(ctx, wid, prev.RunID).Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := signals(t, ctx, b.s.Client, wid, prev.RunID); n != 0 {
		t.Fatalf("the previous run was signalled %d order(s) meant for the next run", n)
	}
	sweepUntil(t, ctx, b.router, store.LaneLive, func() bool {
		return record(t, b.s.Store, next.ID).DispatchedAt != nil && record(t, b.s.Store, third.ID).DispatchedAt != nil
	})
	run, err := b.s.Store.RunByEntry(ctx, "await", next.ID)
	if err != nil || run.RunID == "" || run.RunID == prev.RunID || !run.Open {
		t.Fatalf("the next order's run %+v %v: want its own open run", run, err)
	}
	if n := signals(t, ctx, b.s.Client, wid, ""); n != 1 {
		t.Fatalf("the next order's run got %d signals, want 1 (the third order)", n)
	}
}
