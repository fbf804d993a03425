package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// TestConcurrentDecisionsNeverExceedCap: 64 goroutines ask the policy for
// 100 customers at once under a 3-per-7d cap. Every decision goes through
// the real store transaction; some allowed messages "fail" and release
// their reservation, as a failed send does. In the end every customer has
// exactly 3 messages: none over the cap (no violation) and none missing
// (no reservation lost or leaked).
func TestConcurrentDecisionsNeverExceedCap(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	const customers, workers, perWorker = 100, 64, 60
	for i := range customers {
		c := journey.Customer{ID: fmt.Sprintf("c-%03d", i), Email: fmt.Sprintf("c%d@example.com", i), Consent: map[string]bool{"email": true}}
		if _, err := s.UpsertCustomer(ctx, c, "test"); err != nil {
			t.Fatal(err)
		}
	}
	rules := policy.Rules{Location: time.UTC, Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 3}}, MaxDefer: 7 * 24 * time.Hour}
	var allowed, released, deferred atomic.Int64
	var mu sync.Mutex
	sentBy := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				cust := fmt.Sprintf("c-%03d", rng.IntN(customers))
				reqKey := fmt.Sprintf("w%d/r%d", w, i)
				now := time.Now()
				req := store.Request{IdempotencyKey: reqKey + ".1", RequestKey: reqKey, CustomerID: cust, WorkflowID: fmt.Sprint("w", w),
					JourneyID: "j", StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
				d, err := s.Decide(ctx, req, rules.Lookback(), func(snap store.Snapshot) policy.Decision {
					return policy.Decide(rules, snap.Relationship, snap.Window, nil,
						policy.Request{Key: reqKey, Channel: "email", FirstAsked: now}, now)
				})
				if err != nil {
					errs <- err
					return
				}
				switch d.Verdict {
				case policy.Allow:
					allowed.Add(1)
					if rng.IntN(4) == 0 { // the send failed: give the slot back
						if err := s.Release(ctx, req.IdempotencyKey, "failed", "smtp said no"); err != nil {
							errs <- err
							return
						}
						released.Add(1)
						continue
					}
					attempt, err := s.BeginSend(ctx, req.IdempotencyKey, store.Sending{})
					if err != nil {
						errs <- err
						return
					}
					if err := s.MarkSent(ctx, req.IdempotencyKey, attempt, time.Now()); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					sentBy[cust]++
					mu.Unlock()
				case policy.Defer:
					deferred.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	violations, missing := 0, 0
	for i := range customers {
		id := fmt.Sprintf("c-%03d", i)
		hist, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		counted := 0
		for _, e := range hist {
			if e.Status == "sent" || e.Status == "reserved" {
				counted++
			}
		}
		if counted != sentBy[id] {
			t.Errorf("%s: ledger counts %d, senders saw %d", id, counted, sentBy[id])
		}
		switch {
		case counted > 3:
			violations++
		case counted < 3:
			missing++
		}
	}
	t.Logf("%d decisions: %d allowed (%d released and re-used), %d deferred; %d violations, %d customers short of 3",
		workers*perWorker, allowed.Load(), released.Load(), deferred.Load(), violations, missing)
	if violations > 0 || missing > 0 {
		t.Fatalf("%d customers over the cap, %d under it", violations, missing)
	}
	if got, want := allowed.Load()-released.Load(), int64(3*customers); got != want {
		t.Fatalf("allowed minus released = %d, want %d", got, want)
	}
}
