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
