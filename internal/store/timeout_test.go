package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// TestDecisionGivesUpOnAHeldLock: while another session holds a
// customer's lock (a decision stuck mid-way), a decision about them waits
// for the lock timeout, then fails with ErrTimeout, saying what happened
// and that asking again is safe, having recorded nothing. Once the lock is
// free, the same ask decides.
//
// Fails before decisions had a lock timeout: the decision waits until the
// test's deadline and fails with "context deadline exceeded".
func TestDecisionGivesUpOnAHeldLock(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	cfg.Decide = store.DecideTimeouts{Lock: 300 * time.Millisecond}
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Advisory lock keys are not per schema: a customer id of this test's own.
	customer := "c-" + cfg.Schema
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: customer, Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "test"); err != nil {
		t.Fatal(err)
	}
	holder := schemaConn(t, cfg)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('lojal-customer:' || $1::text, 0))", customer); err != nil {
		t.Fatal(err)
	}
	rules := policy.Rules{Location: time.UTC, Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 3}}, MaxDefer: 7 * 24 * time.Hour}
	now := time.Now()
	req := store.Request{IdempotencyKey: "w/s#1.1", RequestKey: "w/s#1", CustomerID: customer, WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute}
	decide := func(snap store.Snapshot) policy.Decision {
		return policy.Decide(rules, snap.Relationship, snap.Window, snap.Waiting,
			policy.Request{Key: req.RequestKey, Channel: "email", Priority: policy.Normal, FirstAsked: now}, now)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = s.Decide(dctx, req, rules.Lookback(), decide)
	waited := time.Since(start)
	if !errors.Is(err, store.ErrTimeout) {
		t.Fatalf("decision while the customer's lock is held: %v after %s, want ErrTimeout", err, waited)
	}
	if waited > 2*time.Second || !strings.Contains(err.Error(), "lock timeout") || !strings.Contains(err.Error(), "ask again") {
		t.Fatalf("after %s: %v; want a prompt error naming the lock timeout and saying to ask again", waited, err)
	}
	if _, err := s.Delivery(ctx, req.IdempotencyKey); err == nil {
		t.Fatal("a decision that timed out recorded a reservation")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := s.Decide(ctx, req, rules.Lookback(), decide)
	if err != nil || d.Verdict != policy.Allow {
		t.Fatalf("the same ask once the lock is free: %+v %v", d, err)
	}
}

// TestDecisionStatementTimeout: a decision whose round trip takes longer
// than the statement timeout (here: the customers table is locked by a
// schema change that never finishes, with no lock timeout set) fails with
// ErrTimeout naming the statement timeout.
func TestDecisionStatementTimeout(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	cfg.Decide = store.DecideTimeouts{Lock: time.Minute, Statement: 300 * time.Millisecond}
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	customer := "c-" + cfg.Schema
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: customer, Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "test"); err != nil {
		t.Fatal(err)
	}
	holder := schemaConn(t, cfg)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := store.Request{IdempotencyKey: "w/s#1.1", RequestKey: "w/s#1", CustomerID: customer, WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: 15 * time.Minute}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = s.Decide(dctx, req, 7*24*time.Hour, func(store.Snapshot) policy.Decision { return policy.Decision{Verdict: policy.Allow} })
	if !errors.Is(err, store.ErrTimeout) || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("decision against a locked customers table: %v; want ErrTimeout naming the statement timeout", err)
	}
}
