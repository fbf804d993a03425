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

// The policy sees the latest engagement of any kind: a click recorded
// here, a journey goal, and whichever is newer wins.
func TestDecideSeesLastEngagement(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	asks := 0
	seen := func() time.Time {
		t.Helper()
		var got time.Time
		req := store.Request{IdempotencyKey: "w/s#1.1", RequestKey: "w/s#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
			StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
		// A fresh ask each time: a replayed one would not call decide.
		asks++
		req.IdempotencyKey = fmt.Sprintf("w/s#1.%d", asks)
		if _, err := s.Decide(ctx, req, time.Hour, func(snap store.Snapshot) policy.Decision {
			got = snap.Relationship.LastEngaged
			return policy.Decision{Verdict: policy.Defer, Reason: policy.ReasonMinGap, Until: now.Add(time.Hour)}
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := seen(); !got.IsZero() {
		t.Fatalf("never engaged, policy saw %s", got)
	}
	click := now.Add(-3 * time.Hour)
	if err := s.RecordEngagement(ctx, store.Engagement{CustomerID: "c-1", MessageKey: "w/s#1.1", Kind: store.EngagedClick, At: click}); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !got.Equal(click) {
		t.Fatalf("after a click at %s, policy saw %s", click, got)
	}
	if err := s.RecordEngagement(ctx, store.Engagement{CustomerID: "c-1", Kind: "opened", At: now}); err == nil {
		t.Fatal("an unknown kind of engagement was recorded")
	}
	// Answering a one-click question counts; so does answering it again
	// differently later (the first answer counts for the journey; the
	// customer engaged all the same). The change used not to count.
	answered := now.Add(-2 * time.Hour)
	if _, err := s.RecordAnswer(ctx, "c-1", "checkin", "all-good", "survey:checkin:c-1", answered); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !got.Equal(answered) {
		t.Fatalf("after an answer at %s, policy saw %s", answered, got)
	}
	changed := now.Add(-time.Hour)
	if _, err := s.RecordAnswer(ctx, "c-1", "checkin", "more-help", "survey:checkin:c-1", changed); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !got.Equal(changed) {
		t.Fatalf("after the answer changed at %s, policy saw %s", changed, got)
	}
}

// A click is recorded once per message: opening the same message's links
// again moves its time forward (the policy sees the latest engagement)
// and adds no row; another message's click is a row of its own.
func TestRecordClickOncePerMessage(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	for i, c := range []struct {
		key   string
		at    time.Time
		first bool
	}{
		{"w/s#1.1", t0, true},
		{"w/s#1.1", t0.Add(time.Hour), false},
		{"w/s#1.1", t0.Add(time.Minute), false}, // out of order: the latest stays
		{"w/s#2.1", t0.Add(2 * time.Hour), true},
	} {
		first, err := s.RecordClick(ctx, "c-1", c.key, c.at)
		if err != nil || first != c.first {
			t.Fatalf("click %d: first=%v %v, want first=%v", i, first, err, c.first)
		}
	}
	got, err := s.Engagements(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Engagement{
		{CustomerID: "c-1", MessageKey: "w/s#2.1", Kind: store.EngagedClick, At: t0.Add(2 * time.Hour)},
		{CustomerID: "c-1", MessageKey: "w/s#1.1", Kind: store.EngagedClick, At: t0.Add(time.Hour)},
	}
	if len(got) != len(want) {
		t.Fatalf("engagements %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].MessageKey != want[i].MessageKey || got[i].Kind != want[i].Kind || !got[i].At.Equal(want[i].At) {
			t.Errorf("engagement %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// A customer who is no longer there (erased) has nothing recorded.
	if _, err := s.RecordClick(ctx, "c-gone", "w/s#1.1", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("click by an unknown customer: %v, want ErrNotFound", err)
	}
}
