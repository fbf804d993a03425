package report

import (
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/store"
)

func TestSpamLevel(t *testing.T) {
	t.Parallel()
	for rate, want := range map[float64]string{0: "ok", 0.99: "ok", 1: "warning", 2.99: "warning", 3: "alarm", 40: "alarm"} {
		if got := SpamLevel(rate); got != want {
			t.Errorf("SpamLevel(%v) = %s, want %s", rate, got, want)
		}
	}
}

// TestSpamRateInReport: each day's complaints per 1,000 delivered emails,
// flagged at Gmail's thresholds (0.1% a warning, 0.3% an alarm).
func TestSpamRateInReport(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	var b strings.Builder
	err := Text(&b, store.Pressure{From: day(1), To: day(28), Weeks: 4, PerWeek: map[int]int{}, Spam: []store.SpamDay{
		{Day: day(20), Spam: store.Spam{Delivered: 10000, Complaints: 5}},
		{Day: day(21), Spam: store.Spam{Delivered: 10000, Complaints: 15}},
		{Day: day(22), Spam: store.Spam{Delivered: 2000, Complaints: 7}},
		{Day: day(23), Spam: store.Spam{Delivered: 0, Complaints: 2}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2026-11-20 10000 5 0.50",
		"2026-11-21 10000 15 1.50 warning",
		"2026-11-22 2000 7 3.50 ALARM",
		"2026-11-23 0 2 -",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0.50  warning") || strings.Contains(out, "2  -  warning") {
		t.Errorf("flagged a rate under the threshold:\n%s", out)
	}
}

// TestEffectiveCapsInReport: the report shows how many decisions were
// taken at the caps in full and at each level adaptive pressure lowered
// them to, with their share and the customers at each lowered level.
func TestEffectiveCapsInReport(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	var b strings.Builder
	err := Text(&b, store.Pressure{From: day(1), To: day(28), Customers: 1000, Weeks: 4, PerWeek: map[int]int{},
		Caps:    []store.CapLevel{{Halvings: 0, Decisions: 750}, {Halvings: 1, Decisions: 200, Customers: 40}, {Halvings: 3, Decisions: 50, Customers: 7}},
		Lowered: 45})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"Effective caps (adaptive pressure)",
		"in full 750 75.0%",
		"halved 200 20.0% 40",
		"divided by 8 50 5.0% 7",
		"45 of 1000 customers had a decision at lowered caps",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := Text(&b, store.Pressure{From: day(1), To: day(28), PerWeek: map[int]int{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Effective caps (adaptive pressure)\n  (no decisions)") {
		t.Errorf("report of no decisions:\n%s", b.String())
	}
}
