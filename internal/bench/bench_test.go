package bench

import (
	"math"
	"os"
	"testing"

	"github.com/lojal/lojal/internal/catalog"
)

// Go benchmarks of the pure core, for benchstat; `lojal bench` runs the
// same fixtures and checks them against their limits.

func BenchmarkDecide(b *testing.B) {
	f := NewDecideFixture()
	b.ReportAllocs()
	for b.Loop() {
		f.Run()
	}
}

func BenchmarkNext(b *testing.B) {
	f, err := NewNextFixture()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	if err := f.Loop(b); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkValidate1000(b *testing.B) {
	fsys, err := ThousandJourneys(os.DirFS("../../journeys"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := catalog.Load(fsys, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFixturesBuild(t *testing.T) {
	t.Parallel()
	if d := NewDecideFixture().Run(); d.Verdict == "" {
		t.Fatal("no decision")
	}
	if _, err := NewNextFixture(); err != nil {
		t.Fatal(err)
	}
	fsys, err := ThousandJourneys(os.DirFS("../../journeys"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(fsys, "bench")
	if err != nil || len(c.Journeys) != 1000 {
		t.Fatalf("%v, %d journeys", err, len(c.Journeys))
	}
	if _, err := catalog.Load(benchJourneys, "bench-journeys"); err != nil {
		t.Fatalf("the journey benchmark's journeys do not validate: %v", err)
	}
}

// TestIdenticalSidesOnASlowingServerTie: the Temporal dev server slows as
// runs pile up in it (each call of a 12-round dispatch run cost its CPU
// 4.4 ms at the start and 6.6 ms at the end), so a side always measured
// second is always measured on a slower server. Two identical sides must
// still come out even, whatever the number of rounds.
func TestIdenticalSidesOnASlowingServerTie(t *testing.T) {
	t.Parallel()
	for rounds := 1; rounds <= 6; rounds++ {
		calls := 0
		side := func() (float64, error) {
			calls++
			return 1000 - 10*float64(calls), nil // 10 slower every round (1% of the first)
		}
		var r Result
		var err error
		if r.Ours, r.Baseline, err = alternate(rounds, side, side); err != nil {
			t.Fatal(err)
		}
		if len(r.Ours) != rounds {
			t.Fatalf("%d rounds measured ours %d times", rounds, len(r.Ours))
		}
		if got := r.Ratio(); math.Abs(got-1) > 1e-9 {
			t.Errorf("%d rounds: identical sides measured a ratio of %.4f (ours %v, baseline %v), want 1",
				rounds, got, r.Ours, r.Baseline)
		}
	}
}

// TestRatioOfUnbracketedRounds: a result whose sides have as many rounds
// (not measured by alternate) compares their medians.
func TestRatioOfUnbracketedRounds(t *testing.T) {
	t.Parallel()
	r := Result{Ours: []float64{8, 9, 10}, Baseline: []float64{10, 12, 11}}
	if got := r.Ratio(); math.Abs(got-9.0/11) > 1e-9 {
		t.Fatalf("ratio %.4f, want 9/11", got)
	}
}
