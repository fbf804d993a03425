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
	if len(r.Limits) != 2 || !strings.Contains(r.Limits[1].Name, "_p") {
		t.Fatalf("limits: %+v", r.Limits)
	}
	t.Logf("%s: ratio %.2f; %s %.3f s; %s %.3f s", r.Decisions.Name, r.Decisions.Ratio(), r.Limits[0].Name, r.Limits[0].Values[0],
		r.Limits[1].Name, r.Limits[1].Values[0])
}
