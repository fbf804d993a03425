package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/pgtest"
)

// TestLedgerSmall runs the ledger benchmark at a small size: it fills the
// months it says, measures both sides, times the report and drops the
// oldest month while decisions run.
func TestLedgerSmall(t *testing.T) {
	r, err := Ledger(context.Background(), LedgerOptions{URL: pgtest.Shared(t).URL, Rows: 24000, Months: 12, Customers: 2000,
		Conc: 4, Duration: 300 * time.Millisecond, Rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Decisions.Name, "decisions at 24k ledger rows") || len(r.Decisions.Ours) != 1 || r.Decisions.Ours[0] <= 0 ||
		r.Decisions.Baseline[0] <= 0 {
		t.Fatalf("decisions: %+v", r.Decisions)
	}
	// pressure, journeys 28 and 365 days, the drop.
	if len(r.Limits) != 4 || !strings.Contains(r.Limits[3].Name, "_p") ||
		!strings.HasPrefix(r.Limits[1].Name, "lojal report journeys --days 28 over 24k ledger rows, 2k runs") ||
		!strings.HasPrefix(r.Limits[2].Name, "lojal report journeys --days 365") || len(r.Limits[2].Values) != 3 {
		t.Fatalf("limits: %+v", r.Limits)
	}
	// The month dropped is a month of the ledger, not an empty one
	// before it: 24,000 rows over 12 months.
	if !strings.HasSuffix(r.Limits[3].Name, "(2000 rows)") {
		t.Errorf("dropped %s, want a month of 2000 rows", r.Limits[3].Name)
	}
	for _, l := range r.Limits {
		t.Logf("%s: %.3f %s", l.Name, l.Values[0], l.Unit)
	}
	t.Logf("%s: ratio %.2f", r.Decisions.Name, r.Decisions.Ratio())
}
