package bench

import (
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
