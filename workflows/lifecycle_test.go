package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/workflows"
)

func sent() (activities.SendOutput, error) {
	return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: "allow"}, Delivery: activities.DeliverOutput{Status: activities.StatusSent}}, nil
}

func order(at time.Time) *journey.Event {
	return &journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: at, Data: map[string]any{"order_id": "o-1", "total": 1.0}}
}

// twoWaits waits for a shipment and then a review, a week each.
const twoWaits = `id: two-waits
name: Two waits
topic: service
priority: high
trigger: { event: order.placed }
steps:
  - id: wait-ship
    wait_for: { event: order.shipped, timeout: 7d, on_timeout: late }
  - id: wait-review
    wait_for: { event: review.written, timeout: 7d, on_timeout: late }
  - id: done
    exit: {}
  - id: late
    exit: {}
`

// TestReorderWindowAppliesEventsInTheOrderTheyHappened: the review (which
// happened later) arrives before the shipment. Applied as they arrive, the
// review is ignored at the first wait and the run waits a week for it;
// held for the reorder window, both are applied in order.
func TestReorderWindowAppliesEventsInTheOrderTheyHappened(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	kariFound(env, acts)
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	start := env.Now()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-review", Type: "review.written", CustomerID: "c-1", At: start.Add(2 * time.Minute),
			Data: map[string]any{"order_id": "o-1"}})
	}, 3*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-ship", Type: "order.shipped", CustomerID: "c-1", At: start.Add(time.Minute),
			Data: map[string]any{"order_id": "o-1"}})
	}, 3*time.Minute+500*time.Millisecond)
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: bundle(t, "two-waits.yaml", twoWaits, "UTC"),
		JourneyID: "two-waits", CustomerID: "c-1", Customer: &c, Trigger: order(start), EntryID: "e-1", ReorderWindow: 2 * time.Second})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Step != "done" {
		t.Fatalf("result %+v %v, want done", res, err)
	}
	if took := env.Now().Sub(start); took > 10*time.Minute {
		t.Fatalf("took %s: the review was not applied after the shipment", took)
	}
}

// TestFinishingRunHandsBackEventsItNeverRead: an event that arrives while
// the run's last message is being sent was lost with the run; it is
// handed back to routing.
func TestFinishingRunHandsBackEventsItNeverRead(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		return sent()
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	var handed []string
	env.OnActivity(acts.Requeue, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RequeueInput) error {
		handed = append(handed, in.EventIDs...)
		return nil
	})
	runOnceWithALateOrder(t, env)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(handed) != 1 || handed[0] != "e-2" {
		t.Fatalf("handed back %v, want the order that came in as the run finished", handed)
	}
}

// runOnceWithALateOrder runs a one-send journey for the order e-1 while a
// second order, e-2, reaches the run as it starts.
func runOnceWithALateOrder(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	env.RegisterDelayedCallback(func() {
		second := *order(env.Now())
		second.ID = "e-2"
		env.SignalWorkflow(workflows.SignalEvent, second)
	}, 0)
	src := "id: once\nname: Once\ntopic: service\npriority: high\ntrigger: { event: order.placed }\nsteps:\n  - id: hello\n    send: { channel: email, template: order-thanks }\n"
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: bundle(t, "once.yaml", src, "UTC"),
		JourneyID: "once", CustomerID: "c-1", Customer: &c, Trigger: order(env.Now()), EntryID: "e-1"})
}

// TestSecondStartOfAnEntryDoesNothing: the entry's run row does not take
// this run (its run is over): a late SignalWithStart started it. It asks
// the policy nothing, sends nothing, records no outcome over the real
// run's, and hands back an event that reached it meanwhile.
func TestSecondStartOfAnEntryDoesNothing(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	var claimed activities.ClaimEntryInput
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ClaimEntryInput) (bool, error) {
		claimed = in
		return false, nil
	})
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		t.Error("a second start sent a message")
		return sent()
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(func(context.Context, activities.FinishRunInput) error {
		t.Error("a second start recorded an outcome over the entry's run")
		return nil
	})
	var handed []string
	env.OnActivity(acts.Requeue, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RequeueInput) error {
		handed = append(handed, in.EventIDs...)
		return nil
	})
	runOnceWithALateOrder(t, env)
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != workflows.OutcomeSecondStart {
		t.Fatalf("ended %+v, %v; want outcome %s", res, err, workflows.OutcomeSecondStart)
	}
	if claimed.EntryID != "e-1" || claimed.JourneyID != "once" || claimed.RunID == "" {
		t.Fatalf("claimed %+v, want the entry e-1 of once with the run's id", claimed)
	}
	if len(handed) != 1 || handed[0] != "e-2" {
		t.Fatalf("handed back %v, want the order that reached the second start", handed)
	}
}

// TestLongDeferralContinuesAsNewWhenSuggested: a message deferred for a
// week while the customer keeps acting grows the run's history; the run
// used to continue as new only between steps, never inside a deferral.
// When Temporal suggests it, the run continues as new in the middle of the
// send step, carrying the events it received and the message's first ask.
func TestLongDeferralContinuesAsNewWhenSuggested(t *testing.T) {
	t.Parallel()
	env := weekDeferralEnv()
	start := env.Now()
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-x", Type: "order.shipped", CustomerID: "c-1", At: env.Now(),
			Data: map[string]any{"order_id": "o-1"}})
	}, time.Hour+time.Second)
	next := continuedInDeferral(t, env, "e-1")
	if next.Resume == nil || next.Resume.Step != "hello" || !next.Resume.FirstAsked.Equal(start) {
		t.Fatalf("resume %+v, want the waiting message with its first ask at %s", next.Resume, start)
	}
	if len(next.Pending) != 1 || next.Pending[0].ID != "e-x" {
		t.Fatalf("pending %+v, want the shipment that arrived during the deferral", next.Pending)
	}
}

// TestContinueAsNewKeepsTheNewestSeenIDs: a run carries the ids of the
// last 500 events it saw into its next execution, so a late duplicate
// (a replica that hung and resumed after the sweeper routed the event) is
// not applied twice. It carried the alphabetically last 500 instead, which
// for ids like e-1 ... e-600 drops events of the last minutes.
func TestContinueAsNewKeepsTheNewestSeenIDs(t *testing.T) {
	t.Parallel()
	env := weekDeferralEnv()
	for i := 1; i <= 600; i++ {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: fmt.Sprintf("e-%d", i), Type: "order.shipped", CustomerID: "c-1", At: env.Now(),
				Data: map[string]any{"order_id": "o-1"}})
		}, time.Minute+time.Duration(i)*time.Second)
	}
	env.RegisterDelayedCallback(func() { env.SetContinueAsNewSuggested(true) }, 2*time.Hour)
	next := continuedInDeferral(t, env, "e-0")
	kept := map[string]bool{}
	for _, id := range next.Seen {
		kept[id] = true
	}
	var lost []string
	for i := 101; i <= 600; i++ {
		if id := fmt.Sprintf("e-%d", i); !kept[id] {
			lost = append(lost, id)
		}
	}
	if len(next.Seen) > 500 || len(lost) > 0 {
		t.Fatalf("%d seen ids carried; of the newest 500, %d not carried (%v ...)", len(next.Seen), len(lost), lost[:min(5, len(lost))])
	}
}

// weekDeferralEnv is a journey environment whose first ask is deferred
// for a week (a cap) and whose later asks send.
func weekDeferralEnv() *testsuite.TestWorkflowEnvironment {
	env, acts := journeyEnv()
	start := env.Now()
	asks := 0
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		asks++
		if asks == 1 {
			return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: "defer", Reason: "cap", Until: start.Add(7 * 24 * time.Hour)}}, nil
		}
		return sent()
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	return env
}

// continuedInDeferral runs a high-priority send (deferred by
// weekDeferralEnv) followed by a wait for the shipment, started by
// order.placed event entry, and returns the input of the execution it
// continued as new into in the middle of the deferral.
func continuedInDeferral(t *testing.T, env *testsuite.TestWorkflowEnvironment, entry string) workflows.JourneyInput {
	t.Helper()
	src := "id: capped\nname: Capped\ntopic: service\npriority: high\ntrigger: { event: order.placed }\nsteps:\n  - id: hello\n    send: { channel: email, template: order-thanks }\n  - id: wait-ship\n    wait_for: { event: order.shipped, timeout: 30d }\n"
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: bundle(t, "capped.yaml", src, "UTC"),
		JourneyID: "capped", CustomerID: "c-1", Customer: &c, Trigger: order(env.Now()), EntryID: entry})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("error %v, want continue-as-new during the week-long deferral", err)
	}
	var next workflows.JourneyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	return next
}

// TestDatabaseOutageAddsNoHistoryPerRetry: a customer read that keeps
// failing runs locally for at most a minute, then as a regular activity
// whose retries happen on the server.
func TestDatabaseOutageAddsNoHistoryPerRetry(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	calls := 0
	env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(func(context.Context, activities.LoadCustomerInput) (activities.LoadCustomerOutput, error) {
		calls++
		if calls <= 12 {
			return activities.LoadCustomerOutput{}, temporal.NewApplicationError("connection refused", "PostgresDown")
		}
		return activities.LoadCustomerOutput{Found: true, Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}}, nil
	})
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		return sent()
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	regular := 0
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "LoadCustomer" {
			regular++
		}
	})
	src := "id: later\nname: Later\ntopic: service\npriority: high\ntrigger: { event: order.placed }\nsteps:\n  - id: pause\n    wait: { duration: 1h }\n  - id: hello\n    send: { channel: email, template: order-thanks }\n"
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: bundle(t, "later.yaml", src, "UTC"),
		JourneyID: "later", CustomerID: "c-1", Customer: &c, Trigger: order(env.Now()), EntryID: "e-1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if regular == 0 {
		t.Fatalf("the customer read never left the workflow worker: %d local attempts, no regular activity", calls)
	}
}

// TestAttributeAddedToTheSchemaDoesNotBreakARun: the customer record has
// an attribute the run's schema (from when it started) never declared.
// Reading the customer after the wait used to fail the run ("unknown
// field"); the run ignores what it does not know.
func TestAttributeAddedToTheSchemaDoesNotBreakARun(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(activities.LoadCustomerOutput{Found: true,
		Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari", "shoe_size": 44.0}}}, nil)
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		return sent()
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	src := `id: later
name: Later
topic: service
priority: high
trigger: { event: order.placed }
steps:
  - id: pause
    wait: { duration: 30d }
  - id: check
    branch:
      - when: customer.first_name == "Kari"
        goto: hello
  - id: hello
    send: { channel: email, template: order-thanks }
`
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: bundle(t, "later.yaml", src, "UTC"),
		JourneyID: "later", CustomerID: "c-1", Customer: &c, Trigger: order(env.Now()), EntryID: "e-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Sent != 1 {
		t.Fatalf("result %+v %v, want the message sent", res, err)
	}
}
