package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

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
	// Cache keeps both ledgers (schemas bench_ledger_full_cache and
	// bench_ledger_empty_cache) after the run and reuses them in the
	// next, filling only what is missing (the month the last run dropped)
	// and deleting the decisions earlier runs took. For developing
	// against a server of one's own (DATABASE_URL), never for a
	// published number: build afresh for that.
	Cache bool
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
	open := schemaStore
	if o.Cache {
		open = cachedSchemaStore
	}
	full, _, closeFull, err := open(ctx, o.URL, "ledger_full", o.Conc+2)
	if err != nil {
		return res, err
	}
	defer closeFull()
	empty, _, closeEmpty, err := open(ctx, o.URL, "ledger_empty", o.Conc)
	if err != nil {
		return res, err
	}
	defer closeEmpty()
	now := time.Now()
	start := time.Now()
	for _, st := range []*store.Store{full, empty} {
		if o.Cache {
			// What earlier runs decided goes; what they built stays.
			if _, err := st.Pool().Exec(ctx, "DELETE FROM contact_ledger WHERE workflow_id = 'bench'; DELETE FROM waiting_messages"); err != nil {
				return res, fmt.Errorf("cache: %w", err)
			}
			var n int
			if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
				return res, fmt.Errorf("cache: %w", err)
			}
			if n == o.Customers {
				continue
			}
			if n != 0 {
				return res, fmt.Errorf("cache: %d customers cached, want %d: drop the bench_ledger_*_cache schemas", n, o.Customers)
			}
		}
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
		if o.Cache {
			var n int
			if err := full.Pool().QueryRow(ctx, ledgerSQL("month-rows"), now, o.Months, m).Scan(&n); err != nil {
				return res, fmt.Errorf("cache: %w", err)
			}
			if n == perMonth {
				continue
			}
			if n != 0 {
				return res, fmt.Errorf("cache: month %d has %d rows, want %d: drop the bench_ledger_*_cache schemas", m, n, perMonth)
			}
		}
		o.Progress(fmt.Sprintf("ledger month %d of %d (%s rows each)", m+1, o.Months, count(perMonth)))
		if _, err := full.Pool().Exec(ctx, ledgerSQL("ledger"), now, o.Months, m, perMonth, o.Customers); err != nil {
			return res, fmt.Errorf("ledger: %w", err)
		}
	}
	runs := o.Customers
	o.Progress(fmt.Sprintf("%s journey runs", count(runs)))
	if _, err := full.Pool().Exec(ctx, ledgerSQL("runs"), now, runs, o.Months, o.Customers); err != nil {
		return res, fmt.Errorf("journey runs: %w", err)
	}
	o.Progress("vacuum and analyze")
	for _, st := range []*store.Store{full, empty} {
		if _, err := st.Pool().Exec(ctx, "VACUUM (ANALYZE) contact_ledger, customers, consent_ledger, journey_runs"); err != nil {
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
			// A run of its own, as a journey's message has: a deferral
			// records the run it waits for (waiting_messages).
			req := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: cust, WorkflowID: "bench", RunID: key, JourneyID: "bench",
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
	// The warm-up wrote some thousand decisions into each: the empty
	// ledger's statistics, taken when it was empty, would have Postgres
	// scan its growing month whole (what autovacuum corrects in a live
	// database). Both sides are analyzed alike.
	for _, st := range []*store.Store{full, empty} {
		if _, err := st.Pool().Exec(ctx, "ANALYZE contact_ledger, waiting_messages"); err != nil {
			return res, fmt.Errorf("analyze: %w", err)
		}
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
	for _, days := range []int{28, 365} {
		o.Progress(fmt.Sprintf("journeys report, %d days", days))
		lim, err := journeysReport(ctx, full, now, days, o.Rows, runs)
		if err != nil {
			return res, err
		}
		res.Limits = append(res.Limits, lim)
	}

	o.Progress("dropping the oldest month while deciding")
	stall, dropped, rows, err := dropWhileDeciding(ctx, full, o.Conc, decideOn(full))
	if err != nil {
		return res, err
	}
	res.Limits = append(res.Limits, LimitResult{Name: fmt.Sprintf("longest decision while %s is dropped (%d rows)", dropped, rows),
		Unit: "s", Values: []float64{stall.Seconds()}, Max: 1})
	return res, nil
}

// journeysReport times lojal report journeys over the last days of the
// full ledger (365: every row of it), three times.
func journeysReport(ctx context.Context, st *store.Store, now time.Time, days, rows, runs int) (LimitResult, error) {
	lim := LimitResult{Name: fmt.Sprintf("lojal report journeys --days %d over %s ledger rows, %s runs", days, count(rows), count(runs)),
		Unit: "s", Max: 5}
	for range 3 {
		t := time.Now()
		rep, err := st.JourneyReport(ctx, now.AddDate(0, 0, -days), now)
		if err != nil {
			return lim, err
		}
		lim.Values = append(lim.Values, time.Since(t).Seconds())
		var entrants, messages int64
		for _, j := range rep {
			entrants += j.Treated.Entrants + j.HeldOut.Entrants
			messages += j.Messages
		}
		if entrants == 0 || messages == 0 {
			return lim, fmt.Errorf("journeys report over %d days found %d entrants and %d messages", days, entrants, messages)
		}
	}
	return lim, nil
}

// dropWhileDeciding runs decisions for a while, drops the oldest ledger
// partition in the middle, and returns the longest any decision took
// from the drop's start to a second after its end, and the rows dropped.
func dropWhileDeciding(ctx context.Context, st *store.Store, conc int, op func(ctx context.Context, w, i int) error) (time.Duration, string, int64, error) {
	parts, err := st.Partitions(ctx, "contact_ledger")
	if err != nil || len(parts) == 0 {
		return 0, "", 0, fmt.Errorf("partitions: %v", err)
	}
	oldest := parts[0]
	var rows int64
	if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{oldest.Name}.Sanitize()).Scan(&rows); err != nil {
		return 0, "", 0, fmt.Errorf("rows of %s: %w", oldest.Name, err)
	}
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
		return 0, "", 0, fmt.Errorf("drop %s: %w", oldest.Name, err)
	}
	if err := <-errs; err != nil {
		return 0, "", 0, err
	}
	if !slices.Equal(dropped, []string{oldest.Name}) {
		return 0, "", 0, fmt.Errorf("dropped %v, want %s", dropped, oldest.Name)
	}
	var longest time.Duration
	for _, s := range spans {
		if s.end.After(dropStart) && s.start.Before(dropEnd.Add(time.Second)) {
			longest = max(longest, s.end.Sub(s.start))
		}
	}
	return longest, oldest.Name, rows, nil
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
