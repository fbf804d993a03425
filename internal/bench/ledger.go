package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// LedgerOptions configure the ledger benchmark.
type LedgerOptions struct {
	URL string
	// Rows of ledger over Months monthly partitions, for Customers.
	Rows, Months, Customers int
	Conc                    int
	Duration                time.Duration
	Rounds                  int
	// Progress reports the slow set-up steps (may be nil).
	Progress func(string)
}

// LedgerResult is what the ledger benchmark measured.
type LedgerResult struct {
	// Decisions compares decisions against the full ledger with the same
	// decisions against an empty one, interleaved.
	Decisions Result
	// Limits: the pressure report over the full ledger, and the longest
	// decision while a month's partition is dropped.
	Limits []LimitResult
	// Fill is how long building the full ledger took.
	Fill time.Duration
}

// benchRules is the house policy without quiet hours.
func benchRules() policy.Rules {
	return policy.Rules{Location: time.UTC, MinGap: 24 * time.Hour, MaxDefer: 7 * 24 * time.Hour,
		Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 3}, {Channel: policy.Push, Window: 24 * time.Hour, Max: 1}}}
}

// Ledger measures what a long-lived ledger costs: decisions at Rows ledger
// rows against decisions at none (same customers, interleaved), the 28-day
// pressure report over those rows, and how long decisions stall while the
// oldest month's partition is dropped.
func Ledger(ctx context.Context, o LedgerOptions) (LedgerResult, error) {
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	res := LedgerResult{Decisions: Result{
		Name: fmt.Sprintf("decisions at %s ledger rows (%d monthly partitions, %s customers), %d clients",
			count(o.Rows), o.Months, count(o.Customers), o.Conc),
		Unit: "decisions/s", BaseName: "the same decisions on an empty ledger", Target: 0.9}}
	full, _, closeFull, err := schemaStore(ctx, o.URL, "ledger_full", o.Conc+2)
	if err != nil {
		return res, err
	}
	defer closeFull()
	empty, _, closeEmpty, err := schemaStore(ctx, o.URL, "ledger_empty", o.Conc)
	if err != nil {
		return res, err
	}
	defer closeEmpty()
	now := time.Now()
	start := time.Now()
	for _, st := range []*store.Store{full, empty} {
		o.Progress(fmt.Sprintf("%s customers", count(o.Customers)))
		if _, err := st.Pool().Exec(ctx, ledgerSQL("customers"), o.Customers); err != nil {
			return res, fmt.Errorf("customers: %w", err)
		}
	}
	if _, err := full.Pool().Exec(ctx, ledgerSQL("partitions"), now, o.Months); err != nil {
		return res, fmt.Errorf("partitions: %w", err)
	}
	// A month at a time: each insert is one partition's rows.
	perMonth := o.Rows / o.Months
	for m := range o.Months {
		o.Progress(fmt.Sprintf("ledger month %d of %d (%s rows each)", m+1, o.Months, count(perMonth)))
		if _, err := full.Pool().Exec(ctx, ledgerSQL("ledger"), now, o.Months, m, perMonth, o.Customers); err != nil {
			return res, fmt.Errorf("ledger: %w", err)
		}
	}
	o.Progress("vacuum and analyze")
	for _, st := range []*store.Store{full, empty} {
		if _, err := st.Pool().Exec(ctx, "VACUUM (ANALYZE) contact_ledger, customers, consent_ledger"); err != nil {
			return res, fmt.Errorf("vacuum: %w", err)
		}
	}
	res.Fill = time.Since(start)

	rules := benchRules()
	seq := time.Now().UnixNano()
	decideOn := func(st *store.Store) func(ctx context.Context, w, i int) error {
		return func(ctx context.Context, w, i int) error {
			cust := fmt.Sprintf("c-%d", 1+rand.IntN(o.Customers))
			key := fmt.Sprintf("bench-%d-%d-%d", seq, w, i)
			now := time.Now()
			req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: cust, WorkflowID: "bench", JourneyID: "bench",
				StepID: "send", Channel: policy.Preferred, Topic: "service", Priority: policy.Normal, FirstAsked: now, Now: now,
				ReservationTTL: 15 * time.Minute, MessageID: key + "@lojal.example"}
			_, err := st.Decide(ctx, req, rules.Lookback(), func(s store.Snapshot) policy.Decision {
				return policy.Decide(rules, s.Relationship, s.Window, s.Waiting, policy.Request{Key: key, Channel: policy.Preferred,
					Topic: "service", Priority: policy.Normal, FirstAsked: now}, now)
			})
			return err
		}
	}
	o.Progress("decisions, full and empty ledger interleaved")
	// One warm-up round each: the first decisions fill the caches.
	if _, err := throughput(ctx, o.Conc, o.Duration, decideOn(full)); err != nil {
		return res, err
	}
	if _, err := throughput(ctx, o.Conc, o.Duration, decideOn(empty)); err != nil {
		return res, err
	}
	res.Decisions.Ours, res.Decisions.Baseline, err = alternate(o.Rounds, func() (float64, error) {
		return throughput(ctx, o.Conc, o.Duration, decideOn(full))
	}, func() (float64, error) {
		return throughput(ctx, o.Conc, o.Duration, decideOn(empty))
	})
	if err != nil {
		return res, err
	}

	o.Progress("pressure report, 28 days")
	pressure := LimitResult{Name: fmt.Sprintf("lojal report pressure --days 28 over %s ledger rows", count(o.Rows)), Unit: "s", Max: 2}
	for range 3 {
		t := time.Now()
		p, err := full.Pressure(ctx, now.AddDate(0, 0, -28), now)
		if err != nil {
			return res, err
		}
		if p.Customers != o.Customers {
			return res, fmt.Errorf("pressure report counted %d customers, want %d", p.Customers, o.Customers)
		}
		pressure.Values = append(pressure.Values, time.Since(t).Seconds())
	}
	res.Limits = append(res.Limits, pressure)

	o.Progress("dropping the oldest month while deciding")
	stall, dropped, err := dropWhileDeciding(ctx, full, o.Conc, decideOn(full))
	if err != nil {
		return res, err
	}
	res.Limits = append(res.Limits, LimitResult{Name: fmt.Sprintf("longest decision while %s is dropped (%s rows)", dropped, count(perMonth)),
		Unit: "s", Values: []float64{stall.Seconds()}, Max: 1})
	return res, nil
}

// dropWhileDeciding runs decisions for a while, drops the oldest ledger
// partition in the middle, and returns the longest any decision took
// from the drop's start to a second after its end.
func dropWhileDeciding(ctx context.Context, st *store.Store, conc int, op func(ctx context.Context, w, i int) error) (time.Duration, string, error) {
	parts, err := st.Partitions(ctx, "contact_ledger")
	if err != nil || len(parts) == 0 {
		return 0, "", fmt.Errorf("partitions: %v", err)
	}
	oldest := parts[0]
	type span struct{ start, end time.Time }
	var mu sync.Mutex
	var spans []span
	dctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; dctx.Err() == nil; i++ {
				s := time.Now()
				if err := op(dctx, w, i); err != nil {
					if dctx.Err() == nil {
						errs <- err
					}
					return
				}
				mu.Lock()
				spans = append(spans, span{s, time.Now()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	dropStart := time.Now()
	dropped, err := st.DropPartitionsBefore(ctx, "contact_ledger", oldest.Before)
	dropEnd := time.Now()
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	close(errs)
	if err != nil {
		return 0, "", fmt.Errorf("drop %s: %w", oldest.Name, err)
	}
	if err := <-errs; err != nil {
		return 0, "", err
	}
	if !slices.Equal(dropped, []string{oldest.Name}) {
		return 0, "", fmt.Errorf("dropped %v, want %s", dropped, oldest.Name)
	}
	var longest time.Duration
	for _, s := range spans {
		if s.end.After(dropStart) && s.start.Before(dropEnd.Add(time.Second)) {
			longest = max(longest, s.end.Sub(s.start))
		}
	}
	return longest, oldest.Name, nil
}

// ledgerSQL is a statement of the ledger benchmark in baseline.sql.
func ledgerSQL(name string) string { return sql("ledger-" + name) }

// count prints 10000000 as 10M and 1000000 as 1M.
func count(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}
