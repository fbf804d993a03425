package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// TestAnEndedRunGivesUpItsPlaceInLine: a run that ends while one of its
// messages waits (deferred) no longer holds a place in the customer's
// line. A run an operator terminated, or one that reached its goal, never
// asks again; its waiting message used to hold back the customer's other
// messages of the same or lower priority until a minute past its due time
// ("a higher-priority message goes first"; the ingest test of a
// terminated run's successor timed out on it). Ending the run, however it
// ends, gives its places up, even a place its last decision took while it
// was being closed; a new run of the same workflow keeps its own.
func TestAnEndedRunGivesUpItsPlaceInLine(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	// wait defers the message of step of run chain workflowID/runID and
	// returns the keys of the waiting messages the policy saw.
	wait := func(workflowID, runID, step string) []string {
		t.Helper()
		key := fmt.Sprintf("%s@%s/%s#1", workflowID, runID, step)
		req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: "c-1", WorkflowID: workflowID, RunID: runID,
			JourneyID: "j", StepID: step, Channel: "email", Priority: policy.High, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
		var seen []string
		if _, err := s.Decide(ctx, req, time.Hour, func(snap store.Snapshot) policy.Decision {
			for _, w := range snap.Waiting {
				seen = append(seen, w.Key)
			}
			return policy.Decision{Verdict: policy.Defer, Reason: policy.ReasonMinGap, Until: now.Add(2 * time.Second)}
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(seen)
		return seen
	}
	start := func(workflowID, key, entry, runID string) int64 {
		t.Helper()
		id, _, err := s.RecordRun(ctx, workflowID, "j", "v1", "c-1", key, entry)
		if err == nil {
			err = s.SetRunID(ctx, id, runID)
		}
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Run a is terminated (the router or the reconciler closes it), run b
	// reaches its goal, run c goes on.
	a := start("j/c-1/a", "a", "e-a", "run-a")
	start("j/c-1/b", "b", "e-b", "run-b")
	start("j/c-1/c", "c", "e-c", "run-c")
	wait("j/c-1/a", "run-a", "hello")
	wait("j/c-1/b", "run-b", "hello")
	wait("j/c-1/c", "run-c", "hello")
	if closed, err := s.CloseRun(ctx, a, "temporal: terminated"); err != nil || !closed {
		t.Fatalf("close: %v %v", closed, err)
	}
	if err := s.FinishRun(ctx, "j", "e-b", "goal"); err != nil {
		t.Fatal(err)
	}
	// The terminated run's decision, under way when it was closed,
	// commits after the close.
	wait("j/c-1/a", "run-a", "later")
	// A new entry starts the same workflow again, as a new run chain.
	start("j/c-1/a", "a", "e-a2", "run-a2")
	wait("j/c-1/a", "run-a2", "hello")
	got := wait("j/c-1/d", "run-d", "hello")
	if want := []string{"j/c-1/a@run-a2/hello#1", "j/c-1/c@run-c/hello#1"}; !slices.Equal(got, want) {
		t.Fatalf("waiting after two runs ended: %v, want only the open runs' messages %v", got, want)
	}
}
