package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// The replay corpus has a history of every shape a run can take: each is
// recorded once, by the code of its day, and replayed by every later
// version of the workflow code (TestReplayHistories). These scenarios
// record them on testdata/shapes, whose policy has a two-second gap so
// deferrals come round in seconds.

// shapesStack is a stack on testdata/shapes whose worker has a push
// service on which every subscription is gone.
func shapesStack(t *testing.T) *stacktest.Stack {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/shapes", NoWorker: true})
	w := workflows.NewWorkers(s.Client, s.TaskQueue, &activities.Activities{Store: s.Store, Catalog: s.Catalog, Sender: channel.Mux{"email": s.Email, "push": gonePush{}},
		Links: s.Links, Log: s.Log, MessageDomain: s.Email.Domain()},
		workflows.WorkerOptions{Worker: worker.Options{WorkerStopTimeout: 5 * time.Second}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return s
}

func shapeCustomer(t *testing.T, ctx context.Context, s *stacktest.Stack, id string) journey.Customer {
	t.Helper()
	c := replayCustomer(id)
	c.Consent["push"] = true
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func shapeEvent(t *testing.T, ctx context.Context, s *stacktest.Stack, c journey.Customer, id, typ, order string) {
	t.Helper()
	e := journey.Event{ID: id, Type: typ, CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"order_id": order}}
	if typ == "order.placed" {
		e.Data["total"] = 1.0
	}
	if _, err := s.Dispatcher.Event(ctx, e); err != nil {
		t.Fatal(err)
	}
}

func finished(t *testing.T, ctx context.Context, s *stacktest.Stack, id string) string {
	t.Helper()
	if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return id
}

// shapeScenarios are the shapes of runs on testdata/shapes.
var shapeScenarios = []historyScenario{
	// A normal-priority message waits 5 s (the settle pause) before its
	// first ask; the second is deferred by the minimum gap, waits on a
	// durable timer and asks again.
	{"shape-settle-and-deferral-loop", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-nudge")
		shapeEvent(t, ctx, s, c, "e-sn-1", "order.placed", "o-sn")
		return finished(t, ctx, s, workflows.WorkflowID("nudge", c.ID, "o-sn"))
	}},
	// wait_for gets its event.
	{"shape-wait-for-arrival", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-arrive")
		shapeEvent(t, ctx, s, c, "e-sa-1", "order.placed", "o-sa")
		time.Sleep(time.Second)
		shapeEvent(t, ctx, s, c, "e-sa-2", "order.shipped", "o-sa")
		return finished(t, ctx, s, workflows.WorkflowID("await", c.ID, "o-sa"))
	}},
	// wait_for times out and takes on_timeout.
	{"shape-wait-for-timeout", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-timeout")
		shapeEvent(t, ctx, s, c, "e-st-1", "order.placed", "o-st")
		return finished(t, ctx, s, workflows.WorkflowID("await", c.ID, "o-st"))
	}},
	// A run waiting at a step moves to an edited version (migrate), then
	// finishes there.
	{"shape-migrate", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-migrate")
		shapeEvent(t, ctx, s, c, "e-sm-1", "order.placed", "o-sm")
		id := workflows.WorkflowID("await", c.ID, "o-sm")
		v1, _ := s.Catalog.Journey("await")
		v2, errs := journey.Parse("await.yaml", []byte(strings.Replace(string(v1.Source), "timeout: 4s", "timeout: 5s", 1)), v1.Schema, v1.Location)
		if err := errs.Err(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, id).State.Current.Kind == journey.ActAwait })
		if err := s.Client.SignalWorkflow(ctx, id, "", workflows.SignalMigrate, workflows.MigrateSignal{Bundle: v2.Bundle(), Version: v2.Version}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, id).Version == v2.Version })
		shapeEvent(t, ctx, s, c, "e-sm-2", "order.shipped", "o-sm")
		return finished(t, ctx, s, id)
	}},
	// Push cannot reach the customer (every subscription is gone): the
	// message goes by email.
	{"shape-push-fallback", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-push")
		if _, err := s.Store.AddPushSubscription(ctx, c.ID, store.PushSubscription{Kind: "http", Endpoint: "device-gone"}); err != nil {
			t.Fatal(err)
		}
		shapeEvent(t, ctx, s, c, "e-sp-1", "order.shipped", "o-sp")
		return finished(t, ctx, s, workflows.WorkflowID("push-first", c.ID, "o-sp"))
	}},
	// A loop of waits: after 200 actions the run continues as new. The
	// first run of the chain is the recorded one.
	{"shape-continue-as-new", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-tick")
		shapeEvent(t, ctx, s, c, "e-sc-1", "review.written", "o-sc")
		id := workflows.WorkflowID("ticker", c.ID, "o-sc")
		desc, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		first := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		waitUntil(t, ctx, func() bool {
			d, err := s.Client.DescribeWorkflowExecution(ctx, id, first)
			return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
		})
		if err := s.Client.TerminateWorkflow(ctx, id, "", "recorded"); err != nil {
			t.Fatal(err)
		}
		return id + "@" + first
	}},
	// The scheduler of a scheduled journey fires (every minute) and
	// enrols the zone's customers. Recorded while it waits for the next
	// firing.
	{"shape-scheduler", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		shapeCustomer(t, ctx, s, "c-shape-schedule")
		if err := ingest.EnsureSchedules(ctx, s.Client, s.Catalog, s.TaskQueue); err != nil {
			t.Fatal(err)
		}
		id := workflows.ScheduleID("every-minute")
		waitUntil(t, ctx, func() bool { return completedActivities(t, ctx, s, id) >= 3 }) // NextFire, Enrol, NextFire
		time.Sleep(time.Second)
		defer func() { _ = s.Client.TerminateWorkflow(context.Background(), id, "", "recorded") }()
		return id
	}},
	// sweep-heartbeat-2s: the event path's sweeper schedules its activity
	// with the 2 s heartbeat timeout and the 0.5 s retry. Recorded once
	// the activity is scheduled (each runs for a minute).
	{"shape-sweeper", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		id := "shape-sweeper"
		if _, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.TaskQueue}, workflows.SweepWorkflow,
			workflows.SweepInput{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, ctx, func() bool {
			d, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
			return err == nil && len(d.GetPendingActivities()) > 0
		})
		defer func() { _ = s.Client.TerminateWorkflow(context.Background(), id, "", "recorded") }()
		return id
	}},
	// sweep-overlap: each sweep's successor starts before the sweep ends
	// (a 4 s stretch, so 1 s together). Recorded once a sweep has ended
	// and its successor runs.
	{"shape-sweeper-overlap", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		// The sweeper's workflow on a worker of its own, whose sweeps
		// only wait out their stretch: the history is the workflow's.
		id, queue := "shape-sweeper-overlap", "shape-sweeper-overlap"
		w := worker.New(s.Client, queue, worker.Options{WorkerStopTimeout: 5 * time.Second})
		w.RegisterWorkflowWithOptions(workflows.New().Sweep, workflow.RegisterOptions{Name: workflows.SweepWorkflow})
		w.RegisterActivityWithOptions(func(ctx context.Context, in workflows.SweepActivityInput) (workflows.SweepActivityOutput, error) {
			end := time.After(in.For)
			for {
				activity.RecordHeartbeat(ctx)
				select {
				case <-ctx.Done():
					return workflows.SweepActivityOutput{}, ctx.Err()
				case <-end:
					return workflows.SweepActivityOutput{}, nil
				case <-time.After(200 * time.Millisecond):
				}
			}
		}, activity.RegisterOptions{Name: workflows.SweepActivity})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if _, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.SweepWorkflow,
			workflows.SweepInput{Stretch: 4 * time.Second}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, ctx, func() bool {
			d, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
			return err == nil && len(d.GetPendingActivities()) > 0 && completedActivities(t, ctx, s, id) >= 2
		})
		defer func() { _ = s.Client.TerminateWorkflow(context.Background(), id, "", "recorded") }()
		return id
	}},
	// holdout-v1: a held-out run records the message it would have sent
	// instead of sending, and ends on the goal.
	{"shape-holdout-held-out-goal", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		return holdoutScenario(t, ctx, s, true)
	}},
	// holdout-v1: a treated run of a journey with a holdout records its
	// group and sends as before, then ends on the goal.
	{"shape-holdout-treated-goal", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		return holdoutScenario(t, ctx, s, false)
	}},
	// ask-again-when-retries-run-out-v1: the relay throttles the first
	// message for longer than its send may take (6 s here), Temporal
	// fails the delivery with retry state TIMEOUT, and the run asks the
	// policy again and sends, instead of failing. On a worker of its own,
	// whose relay throttles once.
	{"shape-retries-run-out", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		queue := "shape-retries-run-out"
		w := workflows.NewWorkers(s.Client, queue, &activities.Activities{Store: s.Store, Catalog: s.Catalog,
			Sender: channel.Mux{"email": &throttleFirst{Sender: s.Email}}, Links: s.Links, Log: s.Log, MessageDomain: s.Email.Domain()},
			workflows.WorkerOptions{Worker: worker.Options{WorkerStopTimeout: 5 * time.Second},
				Workflows: []workflows.Option{workflows.WithSendTimeout(6 * time.Second)}})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		c := shapeCustomer(t, ctx, s, "c-shape-throttled")
		j, _ := s.Catalog.Journey("nudge")
		ev := journey.Event{ID: "e-sr-1", Type: "order.placed", CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"order_id": "o-sr", "total": 1.0}}
		id := workflows.WorkflowID(j.ID, c.ID, "o-sr")
		if _, _, err := s.Store.RecordRun(ctx, id, j.ID, j.Version, c.ID, "o-sr", ev.ID); err != nil {
			t.Fatal(err)
		}
		run, err := s.Client.SignalWithStartWorkflow(ctx, id, workflows.SignalEvent, ev, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
			workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: j.Bundle(), JourneyID: j.ID, Version: j.Version, CustomerID: c.ID,
				Key: "o-sr", Trigger: &ev, EntryID: ev.ID, Customer: &c})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.JourneyResult
		if err := run.Get(ctx, &res); err != nil || res.Sent != 2 {
			t.Fatalf("the throttled run ended %+v, %v; want both messages sent", res, err)
		}
		marked := false
		for _, e := range history(t, ctx, s, id).GetEvents() {
			if m := e.GetMarkerRecordedEventAttributes(); m != nil && strings.Contains(m.GetDetails()["change-id"].String(), "ask-again-when-retries-run-out-v1") {
				marked = true
			}
		}
		if !marked {
			t.Fatal("the run did not take ask-again-when-retries-run-out-v1")
		}
		return id
	}},
	// claim-entry-v1: a second start of an entry whose run has finished
	// (a replica's late SignalWithStart) claims the entry, finds its run
	// over and ends without doing anything.
	{"shape-second-start", func(t *testing.T, ctx context.Context, s *stacktest.Stack) string {
		c := shapeCustomer(t, ctx, s, "c-shape-second")
		shapeEvent(t, ctx, s, c, "e-ss-1", "order.placed", "o-ss")
		shapeEvent(t, ctx, s, c, "e-ss-2", "order.shipped", "o-ss")
		id := finished(t, ctx, s, workflows.WorkflowID("await", c.ID, "o-ss"))
		j, _ := s.Catalog.Journey("await")
		ev := journey.Event{ID: "e-ss-1", Type: "order.placed", CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"order_id": "o-ss", "total": 1.0}}
		run, err := s.Client.SignalWithStartWorkflow(ctx, id, workflows.SignalEvent, ev, client.StartWorkflowOptions{
			ID: id, TaskQueue: s.TaskQueue, WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
			workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: j.Bundle(), JourneyID: j.ID, Version: j.Version, CustomerID: c.ID,
				Key: "o-ss", Trigger: &ev, EntryID: ev.ID, Customer: &c, ReorderWindow: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.JourneyResult
		if err := run.Get(ctx, &res); err != nil || res.Outcome != workflows.OutcomeSecondStart {
			t.Fatalf("the second start ended %+v, %v; want %s", res, err, workflows.OutcomeSecondStart)
		}
		return id
	}},
}

// seen-newest-across-continue-as-new-v1 records its marker where a run
// continues as new: the continue-as-new shape again, as this code records
// it.
func init() {
	shapeScenarios = append(shapeScenarios, again("seen-order-", shapeScenarios, "shape-continue-as-new")...)
	// read-customer-after-wait-for-v1, recorded by a run of epoch 3 that
	// gets an event in a wait_for after the deploy: its own marker, and
	// the read. (Runs of epoch 4 take it without one: epoch4-.)
	shapeScenarios = append(shapeScenarios, again("read-after-wait-for-", shapeScenarios, "shape-wait-for-arrival")...)
	// Routing starts a new run without a signal: its trigger is in its
	// input alone (before, SignalWithStart also wrote it to the history
	// as a signal the run dropped as seen). The send step, the language's
	// constructs and the shapes of a run's first tasks, as runs have been
	// started since.
	historyScenarios = append(historyScenarios, again("start-without-signal-", historyScenarios, "order-thanks-shipped",
		"card-expiry-retrigger-fallback-answered")...)
	shapeScenarios = append(shapeScenarios, again("start-without-signal-", shapeScenarios, "shape-settle-and-deferral-loop",
		"shape-wait-for-arrival", "shape-push-fallback")...)
}

// holdoutCustomer is the first shape customer of the held journey (50%
// held out) in the group asked for.
func holdoutCustomer(heldOut bool) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("c-shape-held-%d", i)
		if journey.HeldOut("held", id, 5000) == heldOut {
			return id
		}
	}
}

func holdoutScenario(t *testing.T, ctx context.Context, s *stacktest.Stack, heldOut bool) string {
	c := shapeCustomer(t, ctx, s, holdoutCustomer(heldOut))
	trial := func(id, typ string) {
		e := journey.Event{ID: id, Type: typ, CustomerID: c.ID, At: time.Now().UTC(), Data: map[string]any{"trial_id": "t-1"}}
		if _, err := s.Dispatcher.Event(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	trial("e-"+c.ID+"-start", "trial.started")
	id := workflows.WorkflowID("held", c.ID, "")
	waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, id).State.Current.Step == "linger" })
	trial("e-"+c.ID+"-convert", "trial.converted")
	var res workflows.JourneyResult
	if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil || res.Outcome != journey.OutcomeGoal {
		t.Fatalf("%s ended %+v, %v; want the goal", id, res, err)
	}
	if want := map[bool]int{true: 0, false: 1}[heldOut]; res.Sent != want {
		t.Fatalf("%s (held out %v) sent %d messages, want %d", id, heldOut, res.Sent, want)
	}
	return id
}

func completedActivities(t *testing.T, ctx context.Context, s *stacktest.Stack, id string) int {
	t.Helper()
	iter := s.Client.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return 0
		}
		if ev.GetEventType() == enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
			n++
		}
	}
	return n
}

// history reads a workflow's history; id may name a run as id@run.
func history(t *testing.T, ctx context.Context, s *stacktest.Stack, id string) *historypb.History {
	t.Helper()
	wid, run, _ := strings.Cut(id, "@")
	iter := s.Client.GetWorkflowHistory(ctx, wid, run, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

// throttleFirst is a relay that throttles its first two attempts (4 s
// apart, so the third would come after a 6 s send timeout) and takes
// everything after.
type throttleFirst struct {
	channel.Sender
	mu    sync.Mutex
	calls int
}

func (f *throttleFirst) Send(ctx context.Context, env channel.Envelope) (channel.Receipt, error) {
	f.mu.Lock()
	f.calls++
	throttled := f.calls <= 2
	f.mu.Unlock()
	if throttled {
		return channel.Receipt{}, &channel.ThrottledError{Err: errors.New("421 4.7.0 try again later"), RetryAfter: 4 * time.Second}
	}
	return f.Sender.Send(ctx, env)
}
