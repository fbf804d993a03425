package activities_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func softOptIn(t *testing.T, b bundle, sale, group string, at time.Time) {
	t.Helper()
	_, err := b.store.RecordConsent(context.Background(), "c-1", []policy.ConsentEntry{{Channel: policy.Email, Topic: policy.AllTopics,
		Action: policy.Grant, Basis: policy.BasisSoftOptIn, At: at, Source: policy.SourceAPI, SaleID: sale, SaleAt: at, ProductGroup: group}})
	if err != nil {
		t.Fatal(err)
	}
}

// loyalty-benefit sends marketing topic loyalty (product groups home, car,
// travel) with basis [consent, soft_opt_in]. A customer whose only basis
// is a sale in another product group gets nothing; a sale the topic
// covers lets the message out, and the ledger row names that sale.
func TestSoftOptInOnlyFromASaleTheTopicCovers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.Now = noon()
	c := kari()
	c.Consent = nil
	b.customer(t, c)
	ctx := context.Background()
	day := 24 * time.Hour
	softOptIn(t, b, "o-9", "pets", noon()().Add(-10*day))
	in := sendInput("loyalty-benefit", "email")
	out, err := b.acts.Send(ctx, in)
	if err != nil || out.Verdict != policy.Suppress || out.Reason != policy.ReasonSoftOptInNotCovered {
		t.Fatalf("sale outside the topic: %+v %v", out, err)
	}
	softOptIn(t, b, "o-123", "home", noon()().Add(-2*day))
	in.Send.Visit = 2
	out, err = b.acts.Send(ctx, in)
	if err != nil || out.Verdict != policy.Allow || out.Delivery.Status != "sent" {
		t.Fatalf("sale the topic covers: %+v %v", out, err)
	}
	if n := b.catcher.Count(); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
	msgs, err := b.store.ConsentMessages(ctx, "c-1")
	want := "soft opt-in from sale o-123, " + noon()().Add(-2*day).Format("2006-01-02") + ", product group home"
	if err != nil || len(msgs) != 1 || msgs[0].Basis != policy.BasisSoftOptIn || msgs[0].BasisFact != want {
		t.Fatalf("evidence of the message: %+v %v, want %q", msgs, err, want)
	}
	hist, _ := b.store.History(ctx, "c-1")
	if len(hist) == 0 || !strings.Contains(string(hist[0].Detail), "product group pets") {
		t.Errorf("the refusal's facts do not name the sale outside the topic: %+v", hist)
	}
}

// A message held back (here by quiet hours) asks the policy again when its
// time comes; a withdrawal recorded while it waited stops it then.
func TestWithdrawalStopsAMessageAlreadyWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := kari()
	c.Timezone = "Europe/Oslo"
	b.customer(t, c)
	ctx := context.Background()
	// Tomorrow night: the withdrawal must come after the consent the
	// customer gave when created just now. Tonight's 22:50 has already
	// passed late in the (UTC) evening, and the earlier withdrawal then
	// rightly lost to the later consent.
	y, m, d := time.Now().UTC().Date()
	oslo, _ := time.LoadLocation("Europe/Oslo")
	night := time.Date(y, m, d+1, 22, 30, 0, 0, oslo)
	clock := night
	b.acts.Now = func() time.Time { return clock }
	in := sendInput("loyalty-benefit", "email")
	in.FirstAsked = night
	first, err := b.acts.Decide(ctx, in.DecideInput)
	if err != nil || first.Verdict != policy.Defer || first.Reason != policy.ReasonQuietHours {
		t.Fatalf("at night: %+v %v", first, err)
	}
	// While it waits, the customer says no in the preference centre.
	_, err = b.store.SetPreferences(ctx, "c-1", store.Preferences{Consent: map[string]bool{"email": false, "push": true}},
		store.Capture{Source: policy.SourcePreferenceCentre, Actor: "customer", Locale: "nb", At: night.Add(20 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	clock = first.Until
	in.Ask = 2
	again, err := b.acts.Send(ctx, in)
	if err != nil || again.Verdict != policy.Suppress || again.Reason != policy.ReasonNoConsent {
		t.Fatalf("when its time came: %+v %v", again, err)
	}
	if n := b.catcher.Count(); n != 0 {
		t.Fatalf("%d messages sent after the withdrawal", n)
	}
	hist, _ := b.store.History(ctx, "c-1")
	if last := hist[len(hist)-1]; !strings.Contains(string(last.Detail), "marketing withdrawn "+night.UTC().Format("2006-01-02")+" (preference centre by customer)") {
		t.Errorf("the suppression's facts do not name the withdrawal: %+v", last)
	}
}

// A message the policy allowed may wait on its channel's send queue; a
// withdrawal recorded meanwhile stops it before anything is handed over.
func TestWithdrawalStopsAMessageOnTheSendQueue(t *testing.T) {
	t.Parallel()
	stoppedOnTheSendQueue(t, "the withdrawal", func(ctx context.Context, b bundle) error {
		return b.store.Unsubscribe(ctx, "c-1", "loyalty", nil, store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: noon()()})
	}, "topic_opted_out", "opted out of loyalty")
}

// An attempt that failed before handing anything over (a 4xx, a broken
// connection) leaves the message "sending", and Temporal retries it
// within the reservation; a withdrawal recorded in between must stop the
// retry too. It did not: only a "reserved" message was looked at again.
func TestWithdrawalStopsARetriedMessage(t *testing.T) {
	t.Parallel()
	stoppedOnTheSendQueue(t, "a failed attempt and the withdrawal", func(ctx context.Context, b bundle) error {
		// sendInput's message: journey/loyalty-benefit/c-1, run-1, step tell, ask 1.
		if _, err := b.store.BeginSend(ctx, "journey/loyalty-benefit/c-1@run-1/tell#1.1", store.Sending{}); err != nil {
			return err
		}
		return b.store.Unsubscribe(ctx, "c-1", "loyalty", nil, store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: noon()()})
	}, "topic_opted_out", "opted out of loyalty")
}

// A complaint or a hard bounce about an earlier message may arrive while
// an allowed one waits on its send queue (or is retried after a "try
// later"): the address is suppressed, and the waiting message must not go
// to it. It used to: only consent was looked at again before sending.
func TestSuppressionStopsAMessageOnTheSendQueue(t *testing.T) {
	t.Parallel()
	stoppedOnTheSendQueue(t, "the complaint", func(ctx context.Context, b bundle) error {
		return b.store.Complain(ctx, "email", strings.ToUpper(kari().Email), "<earlier@lojal.test>", "feedback report: abuse")
	}, "complaint")
}

// stoppedOnTheSendQueue has Kari's loyalty email allowed, then what
// happens meanwhile (after what, in words), then delivered: it must be
// released unsent, saying why (each of whys).
func stoppedOnTheSendQueue(t *testing.T, after string, meanwhile func(context.Context, bundle) error, whys ...string) {
	t.Helper()
	b := setup(t)
	b.acts.Now = noon()
	b.customer(t, kari())
	ctx := context.Background()
	in := sendInput("loyalty-benefit", "email")
	d, err := b.acts.Decide(ctx, in.DecideInput)
	if err != nil || d.Verdict != policy.Allow {
		t.Fatalf("decide: %+v %v", d, err)
	}
	if err := meanwhile(ctx, b); err != nil {
		t.Fatal(err)
	}
	out, err := b.acts.Deliver(ctx, activities.DeliverInput{IdempotencyKey: d.IdempotencyKey, Channel: d.Channel, JourneyID: in.JourneyID})
	if err != nil || out.Status != activities.StatusFailed {
		t.Fatalf("deliver after %s: %+v %v", after, out, err)
	}
	for _, why := range whys {
		if !strings.Contains(out.Error, why) {
			t.Fatalf("deliver after %s: %+v; want the reason to say %q", after, out, why)
		}
	}
	if n := b.catcher.Count(); n != 0 {
		t.Fatalf("%d messages sent after %s", n, after)
	}
	hist, _ := b.store.History(ctx, "c-1")
	if last := hist[len(hist)-1]; last.Status != "released" {
		t.Errorf("ledger row %s, want released (it must not count against caps)", last.Status)
	}
}

// allowedAt2055 has kari's message on ch allowed at 20:55 today, five
// minutes before her quiet hours (her zone is UTC; quiet hours
// 21:00-08:00), and returns its Deliver, to be called at a time the test
// sets. The customer is the caller's (b.customer(t, kari())).
func allowedAt2055(t *testing.T, b bundle, ch string) (deliver func() (activities.DeliverOutput, error), evening time.Time) {
	t.Helper()
	y, m, d := time.Now().UTC().Date()
	evening = time.Date(y, m, d, 20, 55, 0, 0, time.UTC)
	b.acts.Now = func() time.Time { return evening }
	in := sendInput("loyalty-benefit", ch)
	in.FirstAsked = evening
	dec, err := b.acts.Decide(context.Background(), in.DecideInput)
	if err != nil || dec.Verdict != policy.Allow {
		t.Fatalf("decide at 20:55: %+v %v", dec, err)
	}
	return func() (activities.DeliverOutput, error) {
		return b.acts.Deliver(context.Background(), activities.DeliverInput{IdempotencyKey: dec.IdempotencyKey, Channel: dec.Channel, JourneyID: in.JourneyID})
	}, evening
}

// A message allowed at 20:55, five minutes before the customer's quiet
// hours, that waits on its send queue (a backlog, a relay's "try later")
// must not go out at 21:05: its reservation ends when quiet hours start,
// and the run asks again (and is deferred to the morning). It used to
// keep its 15 minutes.
func TestAllowedBeforeQuietHoursIsNotSentInThem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.customer(t, kari())
	deliver, evening := allowedAt2055(t, b, "email")
	b.acts.Now = func() time.Time { return evening.Add(10 * time.Minute) }
	out, err := deliver()
	if err != nil || out.Status != activities.StatusExpired {
		t.Fatalf("delivery at 21:05: %+v %v; want expired", out, err)
	}
	if n := b.catcher.Count(); n != 0 {
		t.Fatalf("%d messages sent inside quiet hours", n)
	}
}

// lateSender is an SMTP session that begins before a moment and reaches
// the end of its data after it (a paced relay, a slow greeting): late
// flips when the session begins.
type lateSender struct {
	channel.Sender
	late *atomic.Bool
}

func (s lateSender) Send(ctx context.Context, env channel.Envelope) (channel.Receipt, error) {
	s.late.Store(true)
	return s.Sender.Send(ctx, env)
}

// TestAnAllowedMessageIsNotHandedOverAfterItsTime: the send step checks
// the reservation at its start, but the relay may keep it up to the end of
// its data past the time it had (the start of quiet hours, or the end of
// the reservation, after which decisions no longer count it). The "." is
// not written then: the message expires, nothing reaches the server.
func TestAnAllowedMessageIsNotHandedOverAfterItsTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.customer(t, kari())
	deliver, evening := allowedAt2055(t, b, "email")
	var late atomic.Bool
	b.acts.Now = func() time.Time {
		if late.Load() {
			return evening.Add(5*time.Minute + 5*time.Second)
		}
		return evening.Add(5*time.Minute - time.Second)
	}
	b.acts.Sender = lateSender{Sender: b.acts.Sender, late: &late}
	out, err := deliver()
	if err != nil || out.Status != activities.StatusExpired {
		t.Errorf("a send begun at 20:59:59 and reaching its end at 21:00:05: %+v %v; want expired", out, err)
	}
	if n := b.catcher.Count(); n != 0 {
		t.Fatalf("%d messages handed over inside quiet hours", n)
	}
	hist, _ := b.store.History(ctx, "c-1")
	if last := hist[len(hist)-1]; last.Status != "released" {
		t.Errorf("ledger row %s, want released (it must not count against caps)", last.Status)
	}
}

// TestPushStopsAtTheEndOfItsTime: a push message goes to the customer's
// devices one request after another; a device whose turn comes after the
// reservation ended (quiet hours began while a slow push service answered
// the first) is not woken. The message reached the first device, so it
// was sent.
func TestPushStopsAtTheEndOfItsTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prov, srv := newPushProvider(t)
	b.acts.Sender = channel.Mux{"push": channel.NewPush(channel.PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))}
	b.customer(t, kari())
	for _, tok := range []string{"device-a", "device-b"} {
		if _, err := b.store.AddPushSubscription(context.Background(), "c-1", store.PushSubscription{Kind: "http", Endpoint: tok}); err != nil {
			t.Fatal(err)
		}
	}
	deliver, evening := allowedAt2055(t, b, "push")
	var late atomic.Bool
	prov.beforeTaking = func() { late.Store(true) }
	b.acts.Now = func() time.Time {
		if late.Load() {
			return evening.Add(5*time.Minute + 5*time.Second)
		}
		return evening.Add(5*time.Minute - time.Second)
	}
	out, err := deliver()
	if err != nil || out.Status != activities.StatusSent {
		t.Errorf("delivery begun at 20:59:59: %+v %v; want sent (to the first device)", out, err)
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if n := prov.calls["device-a"] + prov.calls["device-b"]; n != 1 {
		t.Errorf("%d devices woken (%v); want only the one whose turn came before 21:00", n, prov.calls)
	}
}
