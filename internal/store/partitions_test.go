package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/pgtest"
)

// TestPartitionedUntil: every partitioned table takes rows only into a
// month a partition exists for, and the retention job creates them a few
// months ahead; a job that stopped (paused, failing, its schedule gone)
// broke every insert months later, and no metric showed it coming.
// PartitionedUntil is how long all of them can take rows from now, up to
// the first gap.
func TestPartitionedUntil(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := s.EnsurePartitions(ctx, now, 3); err != nil {
		t.Fatal(err)
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	until, err := s.PartitionedUntil(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := month.AddDate(0, 4, 0); !until.Equal(want) {
		t.Fatalf("partitioned until %s, want %s", until, want)
	}
	// A partition further on, after a gap, does not count; nor does one
	// table ahead of the others.
	if _, err := s.EnsurePartitions(ctx, now, 5); err != nil {
		t.Fatal(err)
	}
	next := month.AddDate(0, 6, 0)
	for _, sql := range []string{
		`CREATE TABLE events_gap PARTITION OF events FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')`,
		`CREATE TABLE events_ahead PARTITION OF events FOR VALUES FROM ('` + next.Format(time.DateOnly) + `') TO ('` + next.AddDate(0, 1, 0).Format(time.DateOnly) + `')`,
	} {
		if _, err := s.Pool().Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	until, err = s.PartitionedUntil(ctx, now)
	if err != nil || !until.Equal(next) {
		t.Fatalf("after creating 5 months ahead: %s %v, want %s", until, err, next)
	}
	// Past the last partition: nothing can be written now.
	if until, err := s.PartitionedUntil(ctx, month.AddDate(0, 8, 0)); err != nil || !until.Equal(month.AddDate(0, 8, 0)) {
		t.Fatalf("a month past the last partition: %s %v, want now", until, err)
	}
}
