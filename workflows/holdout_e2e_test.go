package workflows_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/report"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
)

// TestHoldoutEndToEnd: 300 customers start a trial journey with a 20%
// holdout. Customers who got the welcome convert (the goal) more often
// than those held out. The report shows a holdout near 20%, no message
// reached a held-out customer, and an uplift whose 95% interval excludes 0.
func TestHoldoutEndToEnd(t *testing.T) {
	t.Parallel()
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/holdout"})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const n = 300
	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c-ho-%03d", i)
	}
	// Start every customer's trial, a few at a time.
	each(t, ids, func(i int, id string) error {
		c := journey.Customer{ID: id, Email: id + "@example.org", Locale: "en", Timezone: "Europe/Oslo",
			Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
			return err
		}
		_, err := s.Dispatcher.Event(ctx, journey.Event{ID: "e-start-" + id, Type: "trial.started", CustomerID: id, At: time.Now().UTC(),
			Data: map[string]any{"trial_id": "t-" + id}})
		return err
	})
	// Every run records its group; treated runs send, held-out runs
	// record what they would have sent.
	var rep []store.JourneyStats
	waitUntil(t, ctx, func() bool {
		var err error
		rep, err = s.Store.JourneyReport(ctx, start.Add(-time.Minute), time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return len(rep) == 1 && rep[0].Treated.Entrants+rep[0].HeldOut.Entrants == n &&
			rep[0].Messages == rep[0].Treated.Entrants && rep[0].WouldHaveSent == rep[0].HeldOut.Entrants
	}, &rep)
	if _, err := s.Catcher.WaitFor(ctx, int(rep[0].Treated.Entrants)); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range s.Catcher.Messages() {
		for _, to := range m.To {
			got[strings.Trim(to, "<>")] = true
		}
	}
	// Goals: 60% of the customers who got the welcome convert, 20% of
	// the others.
	var converters []string
	for i, id := range ids {
		if (got[id+"@example.org"] && i%10 < 6) || (!got[id+"@example.org"] && i%10 < 2) {
			converters = append(converters, id)
		}
	}
	each(t, converters, func(_ int, id string) error {
		_, err := s.Dispatcher.Event(ctx, journey.Event{ID: "e-convert-" + id, Type: "trial.converted", CustomerID: id, At: time.Now().UTC(),
			Data: map[string]any{"trial_id": "t-" + id}})
		return err
	})
	waitUntil(t, ctx, func() bool {
		var err error
		rep, err = s.Store.JourneyReport(ctx, start.Add(-time.Minute), time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return rep[0].Treated.Goals+rep[0].HeldOut.Goals == int64(len(converters))
	}, &rep)

	rows := report.JourneyRows(rep)
	r := rows[0]
	var table strings.Builder
	if err := report.JourneysText(&table, 1, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d customers, %d converted:\n%s", n, len(converters), table.String())
	if dst := os.Getenv("LOJAL_KEEP_CHART"); dst != "" {
		b, err := report.JourneysPNG(rows)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The holdout is 20% within 4 standard deviations (sqrt(.2·.8/300)
	// = 0.023).
	if sd := math.Sqrt(0.2 * 0.8 / n); math.Abs(r.HeldOutShare-0.2) > 4*sd {
		t.Errorf("%.3f of entrants held out, want 0.2 ± %.3f", r.HeldOutShare, 4*sd)
	}
	// No message reached a held-out customer; every treated one got one.
	heldOut := 0
	for _, id := range ids {
		if journey.HeldOut("trial", id, 2000) {
			heldOut++
			if got[id+"@example.org"] {
				t.Errorf("held-out customer %s got a message", id)
			}
		} else if !got[id+"@example.org"] {
			t.Errorf("treated customer %s got no message", id)
		}
	}
	if int64(heldOut) != r.HeldOut.Entrants || s.Catcher.Count() != n-heldOut {
		t.Errorf("report: %d held out, catcher: %d messages; want %d held out and %d messages", r.HeldOut.Entrants, s.Catcher.Count(), heldOut, n-heldOut)
	}
	if r.MessagesPerEntrant != 1 || r.WouldHaveSent != int64(heldOut) {
		t.Errorf("messages per treated entrant %.2f (want 1), would have sent %d (want %d)", r.MessagesPerEntrant, r.WouldHaveSent, heldOut)
	}
	// Treated 60% against held out 20%: the uplift is about +40 points,
	// and its 95% interval excludes 0.
	if !r.HasHoldout || r.Uplift.Estimate < 0.25 || r.Uplift.Lo <= 0 {
		t.Errorf("uplift %+v: want about +0.4 with an interval above 0", r.Uplift)
	}
	if !slices.Contains(strings.Fields(table.String()), "*") {
		t.Errorf("the table does not mark the uplift as excluding 0:\n%s", table.String())
	}
}

// each runs f for every id, eight at a time, and fails on the first error.
func each(t *testing.T, ids []string, f func(i int, id string) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i, id); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
}
