package workflows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// gonePush is a push service whose every subscription is gone, as a
// provider answering 410 says.
type gonePush struct{}

func (gonePush) Send(_ context.Context, env channel.Envelope) (channel.Receipt, error) {
	return channel.Receipt{Expired: env.Push}, channel.ErrNoLiveSubscription
}

// languageStack is a test stack whose worker also has a push sender
// (one that finds every subscription gone).
func languageStack(t *testing.T) *stacktest.Stack {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys", NoWorker: true})
	w := workflows.NewWorkers(s.Client, s.TaskQueue, &activities.Activities{Store: s.Store, Catalog: s.Catalog, Sender: channel.Mux{"email": s.Email, "push": gonePush{}},
		Links: s.Links, Log: s.Log, MessageDomain: s.Email.Domain()},
		workflows.WorkerOptions{Worker: worker.Options{WorkerStopTimeout: 5 * time.Second}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return s
}

// cardScenario runs card-expiry for c, who consents to push and email: the
// expiry is scheduled, a newer date for the same card moves the reminder
// earlier, push cannot reach the customer so the reminder goes by email,
// and the answer reaches the thank-you. It returns the run's workflow id
// once the run is over.
func cardScenario(t *testing.T, ctx context.Context, s *stacktest.Stack, c journey.Customer) string {
	t.Helper()
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.AddPushSubscription(ctx, c.ID, store.PushSubscription{Kind: "http", Endpoint: "device-1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	first := journey.Event{ID: "e-card-1-" + c.ID, Type: "card.expiry_scheduled", CustomerID: c.ID, At: now,
		Data: map[string]any{"card_id": "k-1", "expires_at": now.Add(24*time.Hour + time.Minute).Format(time.RFC3339)}}
	if _, err := s.Dispatcher.Event(ctx, first); err != nil {
		t.Fatal(err)
	}
	id := workflows.WorkflowID("card-expiry", c.ID, "k-1")
	waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, id).State.Current.Kind == journey.ActSleep })
	// A new expiry date for the same card, three seconds out: the run
	// waits for it instead of the first one's minute.
	newer := first
	newer.ID, newer.At = "e-card-2-"+c.ID, now.Add(time.Second)
	newer.Data = map[string]any{"card_id": "k-1", "expires_at": now.Add(24*time.Hour + 3*time.Second).Format(time.RFC3339)}
	res, err := s.Dispatcher.Event(ctx, newer)
	if err != nil || len(res.Journeys) != 1 || res.Journeys[0].Action != "signalled" {
		t.Fatalf("newer trigger: %+v %v", res, err)
	}
	if _, err := s.Catcher.WaitFor(ctx, s.Catcher.Count()+1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool { return runInfo(t, ctx, s.Client, id).State.Current.Kind == journey.ActAwait })
	answer := journey.Event{ID: "e-card-3-" + c.ID, Type: "card.answered", CustomerID: c.ID, At: time.Now().UTC(),
		Data: map[string]any{"card_id": "k-1", "answer": "forny det"}}
	if _, err := s.Dispatcher.Event(ctx, answer); err != nil {
		t.Fatal(err)
	}
	var out workflows.JourneyResult
	if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, &out); err != nil || out.Outcome != journey.OutcomeExit || out.Step != "done" || out.Sent != 2 {
		t.Fatalf("run ended %+v %v; want both messages and the done exit", out, err)
	}
	return id
}

// TestCardExpiryEndToEnd runs the journey language's newer constructs
// through Temporal, Postgres and SMTP: a newer trigger moves the reminder,
// push falls back to email along the channel list, the reminder's outcome
// decides the branch, and the answer is in the thank-you.
func TestCardExpiryEndToEnd(t *testing.T) {
	t.Parallel()
	s := languageStack(t)
	ctx := waitCtx(t)
	c := kari(t)
	c.Consent = map[string]bool{"email": true, "push": true}
	start := time.Now()
	cardScenario(t, ctx, s, c)
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("took %s: the newer expiry date did not move the reminder forward", took)
	}
	msgs, err := s.Catcher.WaitFor(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if subject := msgs[0].Header.Get("Subject"); !strings.Contains(subject, "k-1") {
		t.Errorf("reminder subject %q", subject)
	}
	text, _ := parts(t, msgs[1])
	if !strings.Contains(text, "Du svarte: forny det") {
		t.Errorf("thank-you text %q lacks the answer", text)
	}
	hist, err := s.Store.History(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var channels []string
	for _, e := range hist {
		channels = append(channels, e.Channel+":"+e.Status)
	}
	if len(hist) != 3 || hist[0].Channel != "push" || hist[0].Status != "failed" || hist[1].Channel != "email" || hist[1].Status != "sent" {
		t.Errorf("ledger %v: want push failed (no live subscription), then email sent, then the thank-you", channels)
	}
	if subs, _ := s.Store.PushSubscriptions(ctx, c.ID); len(subs) != 0 {
		t.Errorf("the gone subscription was kept: %+v", subs)
	}
}
