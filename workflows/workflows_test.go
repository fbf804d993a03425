package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

// TestScheduleFiresAtEachZonesTime runs the scheduler under Temporal's
// test environment with time skipping: months pass in milliseconds, and
// each firing enrols the zones NextFire named, after the timer.
func TestScheduleFiresAtEachZonesTime(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	w := workflows.New()
	env.RegisterWorkflowWithOptions(w.Schedule, workflow.RegisterOptions{Name: workflows.ScheduleWorkflow})
	var acts *activities.Activities
	env.RegisterActivity(acts)
	start := env.Now()
	firings := []activities.NextFireOutput{
		{Found: true, Fire: start.Add(90 * 24 * time.Hour), Zones: []string{"Europe/Oslo", "Europe/Stockholm"}},
		{Found: true, Fire: start.Add(90*24*time.Hour + 6*time.Hour), Zones: []string{"America/New_York"}},
		{Found: false},
	}
	call := 0
	env.OnActivity(acts.NextFire, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NextFireInput) (activities.NextFireOutput, error) {
		out := firings[call]
		call++
		return out, nil
	})
	var enrolled []activities.EnrolInput
	env.OnActivity(acts.Enrol, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EnrolInput) (activities.EnrolOutput, error) {
		if now := env.Now(); now.Before(in.Fire) {
			t.Errorf("enrolled at %s, before the firing at %s", now, in.Fire)
		}
		enrolled = append(enrolled, in)
		return activities.EnrolOutput{Scanned: 10, Enrolled: 7}, nil
	})
	env.OnActivity(acts.RecordFiring, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(workflows.ScheduleWorkflow, workflows.ScheduleInput{JourneyID: "checkin"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: %v", env.GetWorkflowError())
	}
	var res workflows.ScheduleResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Fired != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	if len(enrolled) != 2 || enrolled[0].Zones[1] != "Europe/Stockholm" || enrolled[1].Zones[0] != "America/New_York" {
		t.Fatalf("enrolments %+v", enrolled)
	}
}

// TestSchedulerNeverSkipsAZone: enrolling one zone takes ten hours. The
// next firing used to be computed from the clock afterwards, so the zones
// whose time passed meanwhile were skipped silently. It is computed from
// the last firing: a zone 5 hours late still goes out, one 8 hours late
// (more than MaxLateness) is recorded as skipped with the reason.
func TestSchedulerNeverSkipsAZone(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Schedule, workflow.RegisterOptions{Name: workflows.ScheduleWorkflow})
	var acts *activities.Activities
	env.RegisterActivity(acts)
	start := env.Now()
	zones := []struct {
		zone string
		at   time.Duration
	}{{"Europe/Oslo", time.Hour}, {"Asia/Tokyo", 3 * time.Hour}, {"Europe/London", 6 * time.Hour}, {"America/New_York", 12 * time.Hour}}
	env.OnActivity(acts.NextFire, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NextFireInput) (activities.NextFireOutput, error) {
		for _, z := range zones {
			if at := start.Add(z.at); at.After(in.After) {
				return activities.NextFireOutput{Found: true, Fire: at, Zones: []string{z.zone}}, nil
			}
		}
		return activities.NextFireOutput{}, nil
	})
	var enrolled []string
	env.OnActivity(acts.Enrol, mock.Anything, mock.MatchedBy(func(in activities.EnrolInput) bool { return in.Zones[0] == "Europe/Oslo" })).
		After(10 * time.Hour).Return(func(_ context.Context, in activities.EnrolInput) (activities.EnrolOutput, error) {
		enrolled = append(enrolled, in.Zones[0])
		return activities.EnrolOutput{Scanned: 1, Enrolled: 1}, nil
	})
	env.OnActivity(acts.Enrol, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EnrolInput) (activities.EnrolOutput, error) {
		enrolled = append(enrolled, in.Zones[0])
		return activities.EnrolOutput{Scanned: 1, Enrolled: 1}, nil
	})
	var skipped []activities.FiringInput
	env.OnActivity(acts.RecordFiring, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FiringInput) error {
		if in.Skipped {
			skipped = append(skipped, in)
		}
		return nil
	})
	env.ExecuteWorkflow(workflows.ScheduleWorkflow, workflows.ScheduleInput{JourneyID: "checkin"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"Europe/Oslo", "Europe/London", "America/New_York"}; !slices.Equal(enrolled, want) {
		t.Fatalf("enrolled %v, want %v", enrolled, want)
	}
	if len(skipped) != 1 || skipped[0].Zones[0] != "Asia/Tokyo" || !strings.Contains(skipped[0].Reason, "late") {
		t.Fatalf("skipped %+v, want Tokyo, 8 hours late", skipped)
	}
}

// TestEnrolmentStartsRuns: an enrolment event, dispatched like any event,
// starts the scheduled journey for the customer once, under reentry.
func TestEnrolmentStartsRuns(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys"})
	ctx := waitCtx(t)
	c := kari(t)
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	fire := time.Now().UTC().Truncate(time.Minute)
	ev := journey.Event{ID: "enrol:monthly-hello:1:" + c.ID, Type: activities.EnrolEvent, CustomerID: c.ID, At: fire,
		Data: map[string]any{"journey": "monthly-hello"}}
	for range 2 {
		if _, err := s.Store.AcceptEvents(ctx, []journey.Event{ev}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Dispatcher.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := s.Catcher.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(msgs[0].Header.Get("Subject"), "Hei Kari") {
		t.Fatalf("subject %q", msgs[0].Header.Get("Subject"))
	}
	var res workflows.JourneyResult
	if err := s.Client.GetWorkflow(ctx, workflows.WorkflowID("monthly-hello", c.ID, ""), "").Get(ctx, &res); err != nil || res.Sent != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	// Runs a schedule enrols work on the bulk queue, behind which no live
	// run waits; they deliver through the same send queues (one rate).
	desc, err := s.Client.DescribeWorkflowExecution(ctx, workflows.WorkflowID("monthly-hello", c.ID, ""), "")
	if err != nil {
		t.Fatal(err)
	}
	if q := desc.GetExecutionConfig().GetTaskQueue().GetName(); q != workflows.BulkQueue(s.TaskQueue) {
		t.Fatalf("scheduled run on task queue %q, want %q", q, workflows.BulkQueue(s.TaskQueue))
	}
	// The next month's enrolment is refused by reentry: after 20d.
	ev.ID = "enrol:monthly-hello:2:" + c.ID
	if _, err := s.Store.AcceptEvents(ctx, []journey.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Dispatcher.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := s.Catcher.Count(); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

// TestNormalPriorityWaitsAndGoalEndsIt: a message below high priority
// waits before its first ask; a goal arriving meanwhile ends the run and
// nothing is asked or sent.
func TestNormalPriorityWaitsAndGoalEndsIt(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	sends := 0
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(func(context.Context, activities.DecideInput) (activities.DecideOutput, error) {
		sends++
		return activities.DecideOutput{}, nil
	}).Maybe()
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	src := `id: nudge
name: Nudge
topic: service
priority: normal
trigger: { event: order.placed }
goal: { event: review.written }
steps:
  - id: nudge
    send: { channel: email, template: order-thanks }
`
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	trigger := &journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: env.Now(), Data: map[string]any{"order_id": "o-1", "total": 1.0}}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-2", Type: "review.written", CustomerID: "c-1", At: env.Now(), Data: map[string]any{"order_id": "o-1"}})
	}, 2*time.Second)
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{
		Bundle:    bundle(t, "nudge.yaml", src, "Europe/Oslo"),
		JourneyID: "nudge", CustomerID: "c-1", Customer: &c, Trigger: trigger, EntryID: "e-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != journey.OutcomeGoal || sends != 0 {
		t.Fatalf("result %+v %v, %d sends; want the goal before any ask", res, err, sends)
	}
}

// TestEventDuringSettleCountsLater: the customer acts while a message
// waits to be asked; the wait_for after the send sees that event at once
// instead of waiting out its timeout.
func TestEventDuringSettleCountsLater(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	kariFound(env, acts) // the held event ends a wait_for: the customer is read again
	var steps []string
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DecideInput) (activities.DecideOutput, error) {
		steps = append(steps, in.StepID)
		return activities.DecideOutput{Verdict: "allow", Channel: "email"}, nil
	})
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(activities.DeliverOutput{Status: activities.StatusSent}, nil)
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	src := `id: ship
name: Ship
topic: service
trigger: { event: order.placed }
steps:
  - id: thanks
    send: { channel: email, template: order-thanks }
  - id: wait-for-shipping
    wait_for: { event: order.shipped, timeout: 7d }
  - id: shipped
    send: { channel: email, template: order-thanks }
`
	start := env.Now()
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	trigger := &journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: start, Data: map[string]any{"order_id": "o-1", "total": 1.0}}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-2", Type: "order.shipped", CustomerID: "c-1", At: env.Now(), Data: map[string]any{"order_id": "o-1"}})
	}, time.Second)
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{
		Bundle:    bundle(t, "ship.yaml", src, "Europe/Oslo"),
		JourneyID: "ship", CustomerID: "c-1", Customer: &c, Trigger: trigger, EntryID: "e-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != journey.OutcomeCompleted || res.Sent != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	if took := env.Now().Sub(start); took > time.Minute || len(steps) != 2 || steps[1] != "shipped" {
		t.Fatalf("took %s, steps %v: the shipment should count at once", took, steps)
	}
}

// TestDeletedCustomerEndsTheRun: a customer deleted while in a journey
// ends their run quietly instead of failing the workflow.
func TestDeletedCustomerEndsTheRun(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(activities.DecideOutput{},
		temporal.NewNonRetryableApplicationError("customer no longer exists", activities.ErrTypeCustomerGone, nil))
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	src := "id: bye\nname: Bye\ntopic: service\npriority: high\ntrigger: { event: order.placed }\nsteps:\n  - id: hello\n    send: { channel: email, template: order-thanks }\n"
	c := journey.Customer{ID: "c-1"}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{
		Bundle:    bundle(t, "bye.yaml", src, "UTC"),
		JourneyID: "bye", CustomerID: "c-1", Customer: &c, EntryID: "e-1",
		Trigger: &journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: env.Now(), Data: map[string]any{"order_id": "o", "total": 1.0}}})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != "customer_gone" || res.Step != "hello" {
		t.Fatalf("result %+v %v", res, err)
	}
}

// TestDeliveryRunsOnTheChannelQueue: the policy decides on the journey's
// queue and the message is delivered on the send queue of the channel the
// policy chose (here push, for a "preferred" send), where the server
// limits the rate; a push that can reach no device asks again and goes
// out on the email queue.
func TestDeliveryRunsOnTheChannelQueue(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: "journeys-q"})
	var decided, delivered []string
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.DecideInput) (activities.DecideOutput, error) {
		decided = append(decided, activity.GetInfo(ctx).TaskQueue+" "+in.Send.Channel)
		ch := "push"
		if in.Send.Channel == "email" {
			ch = "email"
		}
		return activities.DecideOutput{Verdict: "allow", Channel: ch, IdempotencyKey: fmt.Sprintf("k%d", in.Ask)}, nil
	})
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.DeliverInput) (activities.DeliverOutput, error) {
		delivered = append(delivered, activity.GetInfo(ctx).TaskQueue+" "+in.Channel+" "+in.IdempotencyKey)
		if in.Channel == "push" {
			return activities.DeliverOutput{Status: activities.StatusFallback}, nil
		}
		return activities.DeliverOutput{Status: activities.StatusSent}, nil
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	if res, err := oneSendRun(t, env, "preferred"); err != nil || res.Sent != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
	wantDecided := []string{"journeys-q preferred", "journeys-q email"}
	wantDelivered := []string{"journeys-q-push push k1", "journeys-q-email email k2"}
	if !slices.Equal(decided, wantDecided) || !slices.Equal(delivered, wantDelivered) {
		t.Fatalf("decided %q, delivered %q; want %q and %q", decided, delivered, wantDecided, wantDelivered)
	}
}

// TestLongOutageAsksThePolicyAgain: when a delivery's retries run out
// (an SMTP relay down, or throttling, for longer than the send may take),
// Temporal fails the activity with the last error rather than a timeout.
// The run must ask the policy again, as after a timeout, not fail: a
// failed run never sends the message nor any later step, and its
// reservation is never given back.
func TestLongOutageAsksThePolicyAgain(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	var asks []int
	env.OnActivity(acts.Decide, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DecideInput) (activities.DecideOutput, error) {
		asks = append(asks, in.Ask)
		return activities.DecideOutput{Verdict: "allow", Channel: "email", IdempotencyKey: fmt.Sprintf("k%d", in.Ask)}, nil
	})
	var delivered []string
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverOutput, error) {
		delivered = append(delivered, in.IdempotencyKey)
		if in.IdempotencyKey == "k1" {
			// The relay says "try later", five minutes at a time: the
			// fourth retry would come after the send's 16 minutes.
			return activities.DeliverOutput{}, temporal.NewApplicationErrorWithOptions("421 4.7.0 try again later", activities.ErrTypeThrottled,
				temporal.ApplicationErrorOptions{NextRetryDelay: 5 * time.Minute})
		}
		return activities.DeliverOutput{Status: activities.StatusSent}, nil
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	if res, err := oneSendRun(t, env, "email"); err != nil || res.Sent != 1 {
		t.Fatalf("result %+v %v; want the message sent after the outage (asks %v, deliveries %v)", res, err, asks, delivered)
	}
	if !slices.Equal(asks, []int{1, 2}) || delivered[len(delivered)-1] != "k2" {
		t.Fatalf("asks %v, deliveries %v; want a second ask once the first delivery's retries ran out", asks, delivered)
	}
}

// oneSendRun runs, in env, a high-priority journey of one send step on
// channel, started by an order, and returns how it ended.
func oneSendRun(t *testing.T, env *testsuite.TestWorkflowEnvironment, channel string) (workflows.JourneyResult, error) {
	t.Helper()
	src := "id: hi\nname: Hi\ntopic: service\npriority: high\ntrigger: { event: order.placed }\nsteps:\n  - id: hello\n    send: { channel: " + channel + ", template: order-thanks }\n"
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{
		Bundle: bundle(t, "hi.yaml", src, "UTC"), JourneyID: "hi", CustomerID: "c-1", Customer: &c, EntryID: "e-1",
		Trigger: &journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: env.Now(), Data: map[string]any{"order_id": "o", "total": 1.0}}})
	var res workflows.JourneyResult
	return res, env.GetWorkflowResult(&res)
}

// journeyEnv is Temporal's test environment with the journey workflow and
// its activities registered (acts is nil: its methods name them).
func journeyEnv() (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
	var acts *activities.Activities
	env.RegisterActivity(acts)
	return env, acts
}

// kariFound has the runs of env read the customer as Kari, as she is
// (after a wait, and when a wait_for gets its event).
func kariFound(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
	env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(
		activities.LoadCustomerOutput{Found: true, Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}}, nil)
}

// bundle is a journey definition paired with the test schema.
func bundle(t *testing.T, file, src, timezone string) journey.Bundle {
	t.Helper()
	schema, err := os.ReadFile("testdata/journeys/schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return journey.Bundle{File: file, Journey: []byte(src), SchemaFile: "schema.yaml", Schema: schema, Timezone: timezone}
}

// TestSweepRetriesItsActivitySoon: the sweeper's activity is given up
// after 2 s without a heartbeat and retried 0.5 s later, so that a retry
// Temporal hands to a hung worker's outstanding poll costs seconds, not
// the 7 s the earlier options cost (changeSweepHeartbeat).
func TestSweepRetriesItsActivitySoon(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Sweep, workflow.RegisterOptions{Name: workflows.SweepWorkflow})
	var infos []activity.Info
	env.RegisterActivityWithOptions(func(ctx context.Context, in workflows.SweepActivityInput) (workflows.SweepActivityOutput, error) {
		infos = append(infos, activity.GetInfo(ctx))
		return workflows.SweepActivityOutput{}, nil
	}, activity.RegisterOptions{Name: workflows.SweepActivity})
	env.ExecuteWorkflow(workflows.SweepWorkflow, workflows.SweepInput{})
	if !workflow.IsContinueAsNewError(env.GetWorkflowError()) {
		t.Fatalf("the sweeper ended with %v, want it to continue as new", env.GetWorkflowError())
	}
	if len(infos) == 0 {
		t.Fatal("no sweep ran")
	}
	for _, info := range infos {
		if info.HeartbeatTimeout != workflows.SweepHeartbeatTimeout {
			t.Fatalf("heartbeat timeout %s, want %s", info.HeartbeatTimeout, workflows.SweepHeartbeatTimeout)
		}
	}
}

// TestSweepStartsItsSuccessorBeforeItEnds: between two sweeps the
// sweeper needs a workflow task to schedule the next one. Temporal gives
// that task first to the worker that ran the last one (its sticky queue),
// so when that worker hangs (SIGSTOP) the task waits 5 s for it and may
// then go to the hung worker's outstanding poll for a workflow task
// timeout more: no sweep ran meanwhile, and events a dead replica left
// waited that long. Each sweep's successor now starts SweepOverlap before
// the sweep is due to end, so such a stall passes while the earlier sweep
// still runs, and a continued run's workflow tasks time out after
// SweepTaskTimeout, not 10 s.
func TestSweepStartsItsSuccessorBeforeItEnds(t *testing.T) {
	t.Parallel()
	// Each sweep runs for the minute it is given.
	env := sweeper(time.Minute)
	var mu sync.Mutex
	var starts, ends []time.Time
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		starts = append(starts, env.Now())
	})
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) {
		mu.Lock()
		defer mu.Unlock()
		ends = append(ends, env.Now())
	})
	env.ExecuteWorkflow(workflows.SweepWorkflow, workflows.SweepInput{})
	var can *workflow.ContinueAsNewError
	if !errors.As(env.GetWorkflowError(), &can) {
		t.Fatalf("the sweeper ended with %v, want it to continue as new", env.GetWorkflowError())
	}
	if can.WorkflowTaskTimeout != workflows.SweepTaskTimeout {
		t.Errorf("the continued sweeper's workflow task timeout is %s, want %s", can.WorkflowTaskTimeout, workflows.SweepTaskTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < 2 || len(ends) != len(starts) {
		t.Fatalf("%d sweeps started, %d ended", len(starts), len(ends))
	}
	for i := 1; i < len(starts); i++ {
		if lead := ends[i-1].Sub(starts[i]); lead < workflows.SweepOverlap {
			t.Fatalf("sweep %d started %s before sweep %d ended, want at least %s: a stalled workflow task leaves no sweep running",
				i+1, lead, i, workflows.SweepOverlap)
		}
	}
}

// TestSweepsDoNotPileUpWhileFailing: while Postgres is away every sweep
// fails and is retried without end, so none ends. The sweeper used to
// start a successor every stretch all the same, and when Postgres came
// back all of them swept at once (each routing enrolments at the full
// bulk rate). At most two sweeps are under way at a time. (The test
// environment ends unlimited retries after 10 attempts, so a sweep that
// never ends stands for one retried without end.)
func TestSweepsDoNotPileUpWhileFailing(t *testing.T) {
	t.Parallel()
	env := sweeper(time.Hour)
	var mu sync.Mutex
	started := 0
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		started++
	})
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 10*time.Minute)
	env.ExecuteWorkflow(workflows.SweepWorkflow, workflows.SweepInput{})
	mu.Lock()
	defer mu.Unlock()
	if started != 2 {
		t.Fatalf("%d sweeps were started in 10 minutes in which none ended, want 2", started)
	}
}

// sweeper is a test environment running the sweeper workflow, each of
// whose sweeps takes each on the workflow's clock.
func sweeper(each time.Duration) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.New().Sweep, workflow.RegisterOptions{Name: workflows.SweepWorkflow})
	env.RegisterActivityWithOptions(func(context.Context, workflows.SweepActivityInput) (workflows.SweepActivityOutput, error) {
		return workflows.SweepActivityOutput{}, nil
	}, activity.RegisterOptions{Name: workflows.SweepActivity})
	env.OnActivity(workflows.SweepActivity, mock.Anything, mock.Anything).After(each).Return(workflows.SweepActivityOutput{}, nil)
	return env
}
