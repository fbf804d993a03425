package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	applied, err := store.Migrate(context.Background(), cfg)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v; want nothing", applied, err)
	}
}

func TestOpenFailsFastWithoutSchema(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	cfg.Schema = "no_such_schema"
	_, err := store.Open(context.Background(), cfg)
	if !errors.Is(err, store.ErrNotMigrated) {
		t.Fatalf("Open on an empty schema: %v, want ErrNotMigrated", err)
	}
}

func TestCustomerRoundTrip(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	c := journey.Customer{ID: "c-1", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true, "push": false}, Attributes: map[string]any{"plan": "home"}}
	res, err := s.UpsertCustomer(ctx, c, "test")
	if err != nil || !res.Created {
		t.Fatalf("upsert: %+v %v", res, err)
	}
	c.Attributes["plan"] = "car"
	res, err = s.UpsertCustomer(ctx, c, "test")
	if err != nil || res.Created || res.Previous.Attributes["plan"] != "home" {
		t.Fatalf("second upsert: %+v %v", res, err)
	}
	got, err := s.Customer(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != c.Email || got.Attributes["plan"] != "car" || !got.Consent["email"] || got.Consent["push"] {
		t.Fatalf("got %+v", got)
	}
	// An unsubscribe survives a sync that leaves opt-outs out, and
	// consent for channels it does not mention stays.
	if err := s.OptOutTopics(ctx, "c-1", []string{"marketing"}, store.Capture{Source: policy.SourceAPI, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.TopicsOptedOut, c.Consent = nil, map[string]bool{"push": true}
	if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Customer(ctx, "c-1"); len(got.TopicsOptedOut) != 1 || !got.Consent["email"] || !got.Consent["push"] {
		t.Fatalf("after a partial sync: %+v", got)
	}
	c.TopicsOptedOut = []string{}
	if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Customer(ctx, "c-1"); len(got.TopicsOptedOut) != 0 {
		t.Fatalf("an explicit empty list should clear opt-outs: %+v", got)
	}
	if _, err := s.Customer(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing customer: %v", err)
	}
}

func TestInsertEventIsIdempotent(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1"}, "test"); err != nil {
		t.Fatal(err)
	}
	e := journey.Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: time.Now()}
	st, err := s.InsertEvent(ctx, e)
	if err != nil || !st.New {
		t.Fatalf("first insert: %+v %v", st, err)
	}
	st, err = s.InsertEvent(ctx, e)
	if err != nil || st.New || st.Dispatched {
		t.Fatalf("redelivery before dispatch: %+v %v", st, err)
	}
	if err := s.MarkDispatched(ctx, "e-1"); err != nil {
		t.Fatal(err)
	}
	st, err = s.InsertEvent(ctx, e)
	if err != nil || st.New || !st.Dispatched {
		t.Fatalf("redelivery after dispatch: %+v %v", st, err)
	}
	other := e
	other.Data = map[string]any{"other": "data"}
	if _, err := s.InsertEvent(ctx, other); !errors.Is(err, store.ErrEventConflict) {
		t.Fatalf("reused id, other data: %v", err)
	}
	other = e
	other.At = e.At.Add(time.Second)
	if _, err := s.InsertEvent(ctx, other); !errors.Is(err, store.ErrEventConflict) {
		t.Fatalf("reused id, other time: %v", err)
	}
	e.Type = "other.type"
	if _, err := s.InsertEvent(ctx, e); !errors.Is(err, store.ErrEventConflict) {
		t.Fatalf("reused id: %v", err)
	}
	if _, err := s.InsertEvent(ctx, journey.Event{ID: "e-2", Type: "x", CustomerID: "ghost", At: time.Now()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
}

func TestDecideRecordsAndReplays(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "a@example.com", Consent: map[string]bool{"email": true}}, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	req := store.Request{IdempotencyKey: "w/s#1.1", RequestKey: "w/s#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	calls := 0
	decide := func(snap store.Snapshot) policy.Decision {
		calls++
		if !snap.Relationship.Channels["email"].Consent || !snap.Relationship.Channels["email"].Address {
			t.Errorf("relationship %+v", snap.Relationship)
		}
		return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
	}
	d, err := s.Decide(ctx, req, 7*24*time.Hour, decide)
	if err != nil || d.Verdict != policy.Allow || d.Replayed {
		t.Fatalf("decide: %+v %v", d, err)
	}
	d, err = s.Decide(ctx, req, 7*24*time.Hour, decide)
	if err != nil || d.Verdict != policy.Allow || !d.Replayed || calls != 1 {
		t.Fatalf("retried decide: %+v %v (calls %d)", d, err, calls)
	}
	// The reservation now counts against the window of the next request.
	req2 := req
	req2.IdempotencyKey, req2.RequestKey = "w/t#1.1", "w/t#1"
	_, err = s.Decide(ctx, req2, 7*24*time.Hour, func(snap store.Snapshot) policy.Decision {
		if len(snap.Window) != 1 || snap.Window[0].Key != "w/s#1" {
			t.Errorf("window %+v, want the reservation", snap.Window)
		}
		return policy.Decision{Verdict: policy.Defer, Channel: "email", Reason: policy.ReasonMinGap, Until: now.Add(time.Hour)}
	})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(ctx, "c-1")
	if err != nil || len(hist) != 2 || hist[1].Decision != "defer" || hist[1].Reason != "min_gap" {
		t.Fatalf("history %+v %v", hist, err)
	}
	// Releasing the reservation frees the slot.
	if err := s.Release(ctx, "w/s#1.1", "failed", "render: missing first_name"); err != nil {
		t.Fatal(err)
	}
	req3 := req
	req3.IdempotencyKey, req3.RequestKey = "w/u#1.1", "w/u#1"
	_, err = s.Decide(ctx, req3, 7*24*time.Hour, func(snap store.Snapshot) policy.Decision {
		if len(snap.Window) != 0 {
			t.Errorf("window %+v after release, want empty", snap.Window)
		}
		if len(snap.Waiting) != 1 || snap.Waiting[0].Key != "w/t#1" {
			t.Errorf("waiting %+v, want the deferred request", snap.Waiting)
		}
		return policy.Decision{Verdict: policy.Suppress, Channel: "email", Reason: policy.ReasonStale}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSentTo: a report is matched to the message lojal sent to the address
// it names, by key or by Message-ID, and to no other.
func TestSentTo(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now()
	for _, m := range []struct{ customer, key, address string }{{"c-1", "k-1", "Kari@example.no"}, {"c-2", "k-2", "ola@example.no"}} {
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: m.customer}, "test"); err != nil {
			t.Fatal(err)
		}
		_, err := s.Decide(ctx, store.Request{IdempotencyKey: m.key, RequestKey: m.key, CustomerID: m.customer, WorkflowID: "w", JourneyID: "j",
			StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}, time.Hour,
			func(store.Snapshot) policy.Decision {
				return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
			})
		if err != nil {
			t.Fatal(err)
		}
		// Both carry the same Message-ID: only the address tells them apart.
		if _, err := s.BeginSend(ctx, m.key, store.Sending{MessageID: "same@lojal.example", Address: m.address, Locale: "nb", Subject: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		address, messageID, key string
		customer                string
	}{
		{"kari@example.no", "same@lojal.example", "", "c-1"},
		{"ola@example.no", "same@lojal.example", "", "c-2"},
		{"OLA@example.no", "", "k-2", "c-2"},
		{"kari@example.no", "", "k-2", ""},
		{"victim@example.no", "same@lojal.example", "k-1", ""},
		{"kari@example.no", "other@lojal.example", "", ""},
		{"kari@example.no", "", "", ""},
	} {
		m, found, err := s.SentTo(ctx, tc.address, tc.messageID, tc.key)
		if err != nil || found != (tc.customer != "") || m.CustomerID != tc.customer {
			t.Errorf("SentTo(%s, %q, %q) = %+v %v %v, want customer %q", tc.address, tc.messageID, tc.key, m, found, err, tc.customer)
		}
	}
}

// TestWindowMarksCriticalContacts: the policy can leave critical messages
// out of caps (critical_counts_toward_caps: false) only if the window
// says which contacts were critical.
func TestWindowMarksCriticalContacts(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "a@example.com", Consent: map[string]bool{"email": true}}, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	allow := func(store.Snapshot) policy.Decision {
		return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
	}
	for i, p := range []policy.Priority{policy.Critical, policy.Normal} {
		key := fmt.Sprintf("w/s%d#1", i)
		req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
			StepID: "s", Channel: "email", Priority: p, FirstAsked: now, Now: now.Add(time.Duration(i) * time.Second), ReservationTTL: time.Hour}
		if _, err := s.Decide(ctx, req, 7*24*time.Hour, allow); err != nil {
			t.Fatal(err)
		}
	}
	req := store.Request{IdempotencyKey: "w/t#1.1", RequestKey: "w/t#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
		StepID: "t", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now.Add(time.Minute), ReservationTTL: time.Hour}
	_, err := s.Decide(ctx, req, 7*24*time.Hour, func(snap store.Snapshot) policy.Decision {
		if len(snap.Window) != 2 || snap.Window[0].Critical || !snap.Window[1].Critical {
			t.Errorf("window %+v: want the normal contact, then the critical one marked", snap.Window)
		}
		return policy.Decision{Verdict: policy.Suppress, Channel: "email", Reason: policy.ReasonStale}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// allowed has message k.1 to customer c-1 decided and allowed on ch, with
// a reservation of an hour, and returns when.
func allowed(t *testing.T, s *store.Store, ch string) time.Time {
	t.Helper()
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.Decide(ctx, store.Request{IdempotencyKey: "k.1", RequestKey: "k", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: ch, Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}, time.Hour,
		func(store.Snapshot) policy.Decision {
			return policy.Decision{Verdict: policy.Allow, Channel: ch, Reason: policy.ReasonOK}
		}); err != nil {
		t.Fatal(err)
	}
	return now
}

// TestHandOverIsFenced: an attempt that another attempt took over from
// (it was given up for dead) cannot hand the message over, nor can the
// owner once the reservation has ended; the owner's hand-over in time
// records the message as uncertain.
func TestHandOverIsFenced(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := allowed(t, s, "email")
	stale, err := s.BeginSend(ctx, "k.1", store.Sending{})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := s.BeginSend(ctx, "k.1", store.Sending{}) // the next attempt takes over
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PrepareHandOver(ctx, "k.1", stale, time.Now()); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("stale attempt: %v, want ErrLedgerConflict", err)
	}
	if _, err := s.PrepareHandOver(ctx, "k.1", owner, now.Add(time.Hour)); !errors.Is(err, store.ErrReservationOver) {
		t.Fatalf("an hour after a one-hour reservation: %v, want ErrReservationOver", err)
	}
	h, err := s.PrepareHandOver(ctx, "k.1", owner, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Send(ctx, now, "handed over"); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	d, err := s.Delivery(ctx, "k.1")
	if err != nil || d.Status != "uncertain" || d.Error != "handed over" {
		t.Fatalf("delivery %+v %v", d, err)
	}
}

// TestPushHandOverRecordsTheRequest: the hand-over of a push request
// records it sending; over a subscription whose state is final (another
// attempt finished it), the record is refused, and Wait says so.
func TestPushHandOverRecordsTheRequest(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	allowed(t, s, "push")
	attempt, err := s.BeginSend(ctx, "k.1", store.Sending{})
	if err != nil {
		t.Fatal(err)
	}
	// record hands a request to sub over and returns the record's answer.
	record := func(sub int64, meanwhile func()) error {
		t.Helper()
		h, err := s.PrepareHandOver(ctx, "k.1", attempt, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		meanwhile()
		if err := h.SendPush(ctx, sub); err != nil {
			t.Fatal(err)
		}
		return h.Wait()
	}
	if err := record(7, func() {}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PushDeliveries(ctx, "k.1"); err != nil || got[7].Status != "sending" {
		t.Fatalf("push deliveries %+v %v, want subscription 7 sending", got, err)
	}
	if err := s.RecordPush(ctx, "k.1", 7, store.PushDelivery{Status: "sent"}); err != nil {
		t.Fatal(err)
	}
	if err := record(7, func() {}); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("a request recorded over a sent one: %v, want ErrLedgerConflict", err)
	}
	if got, err := s.PushDeliveries(ctx, "k.1"); err != nil || got[7].Status != "sent" {
		t.Fatalf("push deliveries %+v %v, want subscription 7 still sent", got, err)
	}

	// An attempt that lost the message between its check and its record
	// holds no row: its record is refused too.
	takeOver := func() {
		if _, err := s.BeginSend(ctx, "k.1", store.Sending{}); err != nil { // the next attempt takes over
			t.Fatal(err)
		}
	}
	if err := record(8, takeOver); !errors.Is(err, store.ErrLedgerConflict) {
		t.Fatalf("a stale attempt's request: %v, want ErrLedgerConflict", err)
	}
	// Its body left all the same: the request stays on record, for the
	// owner to find it under way.
	if got, err := s.PushDeliveries(ctx, "k.1"); err != nil || got[8].Status != "sending" {
		t.Fatalf("push deliveries %+v %v, want subscription 8 sending", got, err)
	}
	// The connections the refused records went back on still work.
	for range 4 {
		if _, err := s.PushDeliveries(ctx, "k.1"); err != nil {
			t.Fatal(err)
		}
	}
}
