// Package bench measures lojal against baselines taken in the same run on
// the same servers, so results are ratios that survive a noisy machine:
// policy decisions against a bare UPDATE ... RETURNING transaction, email
// sends against a bare SMTP client loop, journeys against a bare
// one-activity Temporal workflow.
package bench

import (
	"context"
	"embed"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed baseline.sql
var baselineSQL embed.FS

// sql returns a named statement from baseline.sql.
func sql(name string) string {
	b, _ := baselineSQL.ReadFile("baseline.sql")
	blocks := strings.Split(string(b), "-- name: ")
	for _, blk := range blocks[1:] {
		n, body, _ := strings.Cut(blk, "\n")
		if strings.TrimSpace(n) == name {
			return strings.TrimSuffix(strings.TrimSpace(body), ";")
		}
	}
	panic("bench: no statement " + name)
}

// Result is one comparison.
type Result struct {
	Name string
	Unit string
	Ours []float64
	// Baseline holds one round more than Ours when the sides were
	// measured by alternate: Baseline[i] and Baseline[i+1] are the rounds
	// just before and after Ours[i].
	Baseline []float64
	BaseName string
	// Target is the least acceptable ratio (ours / baseline).
	Target float64
	Note   string
}

// Median returns the median of xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio is ours / baseline: for rounds measured by alternate, the median
// of each of our rounds against the mean of the baseline rounds either
// side of it; otherwise median(ours) / median(baseline).
func (r Result) Ratio() float64 {
	if len(r.Ours) > 0 && len(r.Baseline) == len(r.Ours)+1 {
		ratios := make([]float64, 0, len(r.Ours))
		for i, o := range r.Ours {
			b := (r.Baseline[i] + r.Baseline[i+1]) / 2
			if b == 0 {
				return 0
			}
			ratios = append(ratios, o/b)
		}
		return Median(ratios)
	}
	b := Median(r.Baseline)
	if b == 0 {
		return 0
	}
	return Median(r.Ours) / b
}

// OK reports whether the ratio meets the target.
func (r Result) OK() bool { return r.Ratio() >= r.Target }

// throughput runs op from conc goroutines for d and returns operations per
// second. Operations under way when d is up are finished and counted (a
// deadline inside them would fail them for the benchmark's sake, and
// Temporal's client fails calls whose deadline is near early). The first
// error stops the run.
func throughput(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, worker, i int) error) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && time.Now().Before(stop); i++ {
				if err := op(ctx, w, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// alternate measures ours rounds times between rounds+1 baseline rounds
// (baseline, ours, baseline, ... ours, baseline), so that a noisy
// neighbour hits both alike and each of our rounds is compared with the
// baseline measured either side of it (Result.Ratio). Comparing pairs
// instead, each measured in the same order, would favour the side
// measured first wherever the servers under test slow down as the
// benchmark fills them, as the Temporal dev server does: two identical
// sides of bare SignalWithStartWorkflow calls, measured in pairs, came
// out at 0.94.
func alternate(rounds int, ours, base func() (float64, error)) (o, b []float64, err error) {
	x, err := base()
	if err != nil {
		return o, b, fmt.Errorf("baseline: %w", err)
	}
	b = append(b, x)
	for range rounds {
		y, err := ours()
		if err != nil {
			return o, b, fmt.Errorf("lojal: %w", err)
		}
		o = append(o, y)
		x, err := base()
		if err != nil {
			return o, b, fmt.Errorf("baseline: %w", err)
		}
		b = append(b, x)
	}
	return o, b, nil
}
