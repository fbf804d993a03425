package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// TestPressureCountsEffectiveCaps: the pressure report counts the
// decisions of the period by the effective caps adaptive pressure left
// (the halvings each decision's facts record), and the customers at each
// lowered level, beside the messages per week, the emails per day and
// the decisions held back.
func TestPressureCountsEffectiveCaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, pgtest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, c := range []string{"a", "b", "c"} {
		if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: c, Email: c + "@example.com", Consent: map[string]bool{"email": true}}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	decide := func(customer string, v policy.Verdict, reason policy.Reason, halvings int, send bool) {
		t.Helper()
		i++
		key := fmt.Sprintf("w-%d/s#1", i)
		req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: customer, WorkflowID: "w", JourneyID: "j", StepID: "s",
			Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute, MessageID: key + "@lojal.example"}
		d := policy.Decision{Verdict: v, Channel: "email", Reason: reason, Detail: policy.Detail{CapHalvings: halvings}}
		if halvings > 0 {
			d.Detail.Ignored, d.Detail.IgnoredSince = 3*halvings, now.Add(-48*time.Hour)
		}
		if v == policy.Defer {
			d.Until = now.Add(time.Hour)
		}
		if _, err := s.Decide(ctx, req, 7*24*time.Hour, func(store.Snapshot) policy.Decision { return d }); err != nil {
			t.Fatal(err)
		}
		if !send {
			return
		}
		attempt, err := s.BeginSend(ctx, req.IdempotencyKey, store.Sending{MessageID: req.MessageID, Address: customer + "@example.com", Locale: "en", Subject: "Hi"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(ctx, req.IdempotencyKey, attempt, now); err != nil {
			t.Fatal(err)
		}
	}
	decide("a", policy.Allow, policy.ReasonOK, 0, true)
	decide("a", policy.Allow, policy.ReasonOK, 1, true)
	decide("a", policy.Defer, policy.ReasonCap, 2, false)
	decide("b", policy.Allow, policy.ReasonOK, 1, true)
	decide("c", policy.Defer, policy.ReasonMinGap, 0, false)
	decide("c", policy.Suppress, policy.ReasonStale, 0, false)

	p, err := s.Pressure(ctx, now.Add(-6*24*time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wantCaps := []store.CapLevel{{Halvings: 0, Decisions: 3}, {Halvings: 1, Decisions: 2, Customers: 2}, {Halvings: 2, Decisions: 1, Customers: 1}}
	if !reflect.DeepEqual(p.Caps, wantCaps) || p.Lowered != 2 {
		t.Errorf("caps %+v, lowered %d; want %+v, lowered 2", p.Caps, p.Lowered, wantCaps)
	}
	wantHeld := []store.Held{{Decision: "defer", Reason: "cap", Count: 1}, {Decision: "defer", Reason: "min_gap", Count: 1},
		{Decision: "suppress", Reason: "stale", Count: 1}}
	if !reflect.DeepEqual(p.Held, wantHeld) {
		t.Errorf("held %+v, want %+v", p.Held, wantHeld)
	}
	// a got 2 messages in the week, b 1, c none.
	if want := map[int]int{0: 1, 1: 1, 2: 1}; p.Customers != 3 || p.Weeks != 1 || !reflect.DeepEqual(p.PerWeek, want) {
		t.Errorf("customers %d, weeks %d, per week %v; want 3, 1, %v", p.Customers, p.Weeks, p.PerWeek, want)
	}
	day := now.UTC().Truncate(24 * time.Hour)
	if len(p.Spam) != 1 || !p.Spam[0].Day.Equal(day) || p.Spam[0].Delivered != 3 || p.Spam[0].Complaints != 0 {
		t.Errorf("spam %+v, want 3 delivered on %s", p.Spam, day)
	}
}
