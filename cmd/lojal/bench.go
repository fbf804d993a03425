package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lojal/lojal/internal/bench"
	"github.com/lojal/lojal/internal/devstack"
)

// runBench runs lojal's throughput benchmarks, each against a baseline
// measured in the same run on the same servers, and prints medians and
// ratios.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := newFlagSet("bench", stderr)
	dur := fs.Duration("duration", 3*time.Second, "length of one measurement")
	rounds := fs.Int("rounds", 5, "measurements per side; the median is reported")
	only := fs.String("only", "", "comma-separated subset: policy, email, journey")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (docs/benchmarks.md)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	want := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	log := slog.New(slog.DiscardHandler)
	var results []bench.Result
	var pg *devstack.Postgres
	dbURL := cfg.DatabaseURL
	if dbURL == "" && (want("policy") || want("journey")) {
		fmt.Fprintln(stderr, "bench: starting a durable throw-away PostgreSQL (fsync on)")
		var err error
		if pg, err = devstack.StartPostgres(ctx, log, devstack.PostgresOptions{Durable: true}); err != nil {
			return err
		}
		defer pg.Stop()
		dbURL = pg.URL
	}
	if want("policy") {
		fmt.Fprintln(stderr, "bench: policy decisions ...")
		r, err := bench.Policy(ctx, bench.PolicyOptions{URL: dbURL, Conc: 8, Duration: *dur, Rounds: *rounds, Customers: 1000})
		if err != nil {
			return fmt.Errorf("policy benchmark: %w", err)
		}
		results = append(results, r)
	}
	if want("email") {
		fmt.Fprintln(stderr, "bench: email sends ...")
		r, err := bench.Email(ctx, bench.EmailOptions{Conc: 4, Duration: *dur, Rounds: *rounds})
		if err != nil {
			return fmt.Errorf("email benchmark: %w", err)
		}
		results = append(results, r)
	}
	printResults(stdout, results, *rounds, *dur, *markdown)
	return nil
}

func printResults(w io.Writer, results []bench.Result, rounds int, dur time.Duration, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "| benchmark | lojal (median) | baseline | baseline (median) | ratio | target | |\n|---|---:|---|---:|---:|---:|---|\n")
		for _, r := range results {
			fmt.Fprintf(w, "| %s | %.0f %s | %s | %.0f | %.2f | >= %.2f | %s |\n", r.Name, bench.Median(r.Ours), r.Unit, r.BaseName,
				bench.Median(r.Baseline), r.Ratio(), r.Target, verdict(r))
		}
		return
	}
	fmt.Fprintf(w, "\nmedians of %d measurements of %s each, lojal and baseline interleaved\n\n", rounds, dur)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tLOJAL\tBASELINE\tRATIO\tTARGET\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f %s\t%.0f (%s)\t%.2f\t>= %.2f %s\t\n", r.Name, bench.Median(r.Ours), r.Unit,
			bench.Median(r.Baseline), r.BaseName, r.Ratio(), r.Target, verdict(r))
	}
	tw.Flush()
	for _, r := range results {
		fmt.Fprintf(w, "  %s: lojal %v, baseline %v\n", r.Name, round(r.Ours), round(r.Baseline))
	}
}

func verdict(r bench.Result) string {
	if r.OK() {
		return "ok"
	}
	return "MISSED"
}

func round(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}
