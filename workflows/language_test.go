package workflows_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/workflows"
)

func allowed(status string) activities.SendOutput {
	return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: policy.Allow, Channel: policy.Email}, Delivery: activities.DeliverOutput{Status: status}}
}

func cardExpiry(t *testing.T) journey.Bundle {
	t.Helper()
	src, err := os.ReadFile("testdata/journeys/card-expiry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return bundle(t, "card-expiry.yaml", string(src), "Europe/Oslo")
}

func cardEvent(id string, at, expires time.Time) *journey.Event {
	return &journey.Event{ID: id, Type: "card.expiry_scheduled", CustomerID: "c-1", At: at,
		Data: map[string]any{"card_id": "k-1", "expires_at": expires.Format(time.RFC3339)}}
}

// TestSendOutcomeDecidesTheBranch: a reminder the policy suppressed is not
// followed by a wait for an answer to it.
func TestSendOutcomeDecidesTheBranch(t *testing.T) {
	t.Parallel()
	for verdict, want := range map[activities.SendOutput]string{
		{DecideOutput: activities.DecideOutput{Verdict: policy.Suppress, Reason: policy.ReasonNoConsent}}: "not-reached",
		{DecideOutput: activities.DecideOutput{Verdict: policy.Suppress, Reason: policy.ReasonStale}}:     "not-reached",
		allowed(activities.StatusFailed): "not-reached",
		allowed(activities.StatusSent):   "no-answer",
	} {
		env, acts := journeyEnv()
		onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) { return verdict, nil })
		env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
		env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
		env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(activities.LoadCustomerOutput{Found: true, Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}}, nil)
		now := env.Now()
		c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
		env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: cardExpiry(t), JourneyID: "card-expiry", CustomerID: "c-1",
			Customer: &c, Trigger: cardEvent("e-1", now, now.Add(24*time.Hour)), EntryID: "e-1", Key: "k-1"})
		var res workflows.JourneyResult
		if err := env.GetWorkflowResult(&res); err != nil || res.Step != want {
			t.Errorf("%s/%s: ended at %+v %v, want %s", verdict.Verdict, verdict.Reason+policy.Reason(verdict.Delivery.Status), res, err, want)
		}
	}
}

// TestAnswerReachesTheNextMessage: the event that ended the wait_for is
// in the send after it, for .Received.
func TestAnswerReachesTheNextMessage(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	kariFound(env, acts)
	var received []map[string]*journey.Event
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		return allowed(activities.StatusSent), nil
	}, func(in activities.DeliverInput) { received = append(received, in.Received) })
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	now := env.Now()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-2", Type: "card.answered", CustomerID: "c-1", At: env.Now(),
			Data: map[string]any{"card_id": "k-1", "answer": "renew it"}})
	}, time.Minute)
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: cardExpiry(t), JourneyID: "card-expiry", CustomerID: "c-1",
		Customer: &c, Trigger: cardEvent("e-1", now, now.Add(24*time.Hour)), EntryID: "e-1", Key: "k-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != journey.OutcomeExit || res.Step != "done" || res.Sent != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	if len(received) != 2 || received[0] != nil || received[1]["card.answered"] == nil || received[1]["card.answered"].Data["answer"] != "renew it" {
		t.Fatalf("received per send: %+v", received)
	}
}

// TestWaitForReadsTheCustomerAgain: docs/journeys.md promises that after
// a wait or a wait_for the customer is read again, so the steps after an
// answer see the customer as they are now (an attribute the answer set,
// such as checkin_answer). Only a wait that ran out read them again.
func TestWaitForReadsTheCustomerAgain(t *testing.T) {
	t.Parallel()
	loads := answeredReads(t, func(activities.SendInput) activities.SendOutput { return allowed(activities.StatusSent) })
	if !slices.ContainsFunc(loads, func(d time.Duration) bool { return d >= time.Minute }) {
		t.Fatalf("customer read at %v after the start; want a read after the answer came at 1m0s", loads)
	}
}

// TestWaitForReadsTheCustomerAgainForAnEarlyAnswer: the answer came while
// the reminder waited out a deferral, so the wait_for after it takes the
// answer from the events held meanwhile; the customer is read again then
// too.
func TestWaitForReadsTheCustomerAgainForAnEarlyAnswer(t *testing.T) {
	t.Parallel()
	loads := answeredReads(t, func(in activities.SendInput) activities.SendOutput {
		if in.Ask == 1 {
			return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: policy.Defer, Reason: policy.ReasonQuietHours, Until: in.FirstAsked.Add(2 * time.Hour)}}
		}
		return allowed(activities.StatusSent)
	})
	if !slices.ContainsFunc(loads, func(d time.Duration) bool { return d >= 2*time.Hour }) {
		t.Fatalf("customer read at %v after the start; want a read when the wait_for took the early answer, after 2h", loads)
	}
}

// answeredReads runs the card-expiry journey with sends answered by send
// and the customer's answer a minute after the start, and returns when,
// after the start, the run read the customer.
func answeredReads(t *testing.T, send func(activities.SendInput) activities.SendOutput) []time.Duration {
	t.Helper()
	env, acts := journeyEnv()
	now := env.Now()
	onSend(env, acts, func(_ context.Context, in activities.SendInput) (activities.SendOutput, error) { return send(in), nil })
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	var loads []time.Duration
	env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.LoadCustomerInput) (activities.LoadCustomerOutput, error) {
			loads = append(loads, env.Now().Sub(now))
			return activities.LoadCustomerOutput{Found: true, Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}}, nil
		})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, journey.Event{ID: "e-2", Type: "card.answered", CustomerID: "c-1", At: env.Now(),
			Data: map[string]any{"card_id": "k-1", "answer": "renew it"}})
	}, time.Minute)
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: cardExpiry(t), JourneyID: "card-expiry", CustomerID: "c-1",
		Customer: &c, Trigger: cardEvent("e-1", now, now.Add(24*time.Hour)), EntryID: "e-1", Key: "k-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Step != "done" || res.Sent != 2 {
		t.Fatalf("result %+v %v", res, err)
	}
	return loads
}

// TestPushFallbackFollowsTheChannelList: push that cannot reach the
// customer falls back along the send's channel list.
func TestPushFallbackFollowsTheChannelList(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	var asked []journey.SendAction
	onSend(env, acts, func(_ context.Context, in activities.SendInput) (activities.SendOutput, error) {
		asked = append(asked, in.Send)
		if in.Send.Channel == policy.Push {
			return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: policy.Allow, Channel: policy.Push},
				Delivery: activities.DeliverOutput{Status: activities.StatusFallback}}, nil
		}
		return activities.SendOutput{DecideOutput: activities.DecideOutput{Verdict: policy.Suppress, Reason: policy.ReasonNoConsent}}, nil
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	now := env.Now()
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: cardExpiry(t), JourneyID: "card-expiry", CustomerID: "c-1",
		Customer: &c, Trigger: cardEvent("e-1", now, now.Add(24*time.Hour)), EntryID: "e-1", Key: "k-1"})
	var res workflows.JourneyResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0].Channel != policy.Push || !slices.Equal(asked[0].Fallback, []string{policy.Email}) ||
		asked[1].Channel != policy.Email || len(asked[1].Fallback) != 0 {
		t.Fatalf("asks %+v: want push with email after it, then email", asked)
	}
}

// TestNewerTriggerMovesTheWait: a new expiry date for the same card
// moves the reminder; the run is not started again.
func TestNewerTriggerMovesTheWait(t *testing.T) {
	t.Parallel()
	env, acts := journeyEnv()
	var sentAt time.Time
	var subjectCard map[string]any
	onSend(env, acts, func(context.Context, activities.SendInput) (activities.SendOutput, error) {
		return allowed(activities.StatusSent), nil
	}, func(in activities.DeliverInput) {
		if sentAt.IsZero() {
			sentAt, subjectCard = env.Now(), in.Trigger.Data
		}
	})
	env.OnActivity(acts.FinishRun, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(acts.ClaimEntry, mock.Anything, mock.Anything).Return(true, nil)
	env.OnActivity(acts.LoadCustomer, mock.Anything, mock.Anything).Return(activities.LoadCustomerOutput{Found: true, Customer: journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}}, nil)
	start := env.Now()
	newer := start.Add(5 * 24 * time.Hour).Truncate(time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalEvent, *cardEvent("e-2", env.Now(), newer))
	}, time.Hour)
	c := journey.Customer{ID: "c-1", Attributes: map[string]any{"first_name": "Kari"}}
	env.ExecuteWorkflow(workflows.JourneyWorkflow, workflows.JourneyInput{Bundle: cardExpiry(t), JourneyID: "card-expiry", CustomerID: "c-1",
		Customer: &c, Trigger: cardEvent("e-1", start, start.Add(10*24*time.Hour)), EntryID: "e-1", Key: "k-1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := newer.Add(-24 * time.Hour); !sentAt.Equal(want) || subjectCard["expires_at"] != newer.Format(time.RFC3339) {
		t.Fatalf("reminder at %s for %v, want %s for the new date", sentAt, subjectCard, want)
	}
}
