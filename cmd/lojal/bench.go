package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	only := fs.String("only", "", "comma-separated subset: core, policy, email, journey")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (docs/benchmarks.md)")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	want := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	log := slog.New(slog.DiscardHandler)
	var results []bench.Result
	var limits []bench.LimitResult
	if want("core") {
		fmt.Fprintln(stderr, "bench: pure core (Decide, Next, validate) ...")
		limits = append(limits, bench.Decide(*rounds))
		next, err := bench.Next(*rounds)
		if err != nil {
			return err
		}
		val, err := bench.Validate(os.DirFS(cfg.Journeys), *rounds)
		if err != nil {
			return err
		}
		limits = append(limits, next, val)
	}
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
	if want("journey") {
		fmt.Fprintln(stderr, "bench: journeys end to end (starting the Temporal dev server) ...")
		addr := cfg.TemporalAddress
		if os.Getenv("TEMPORAL_ADDRESS") == "" {
			t, err := devstack.StartTemporal(ctx, log, devstack.TemporalOptions{})
			if err != nil {
				return err
			}
			defer t.Stop()
			addr = t.Address
		}
		r, err := bench.Journey(ctx, bench.JourneyOptions{URL: dbURL, TemporalAddress: addr, PerRound: 200, Rounds: *rounds, Conc: 32})
		if err != nil {
			return fmt.Errorf("journey benchmark: %w", err)
		}
		results = append(results, r)
	}
	printResults(stdout, results, limits, *rounds, *dur, *markdown)
	return nil
}

func printResults(w io.Writer, results []bench.Result, limits []bench.LimitResult, rounds int, dur time.Duration, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "| benchmark | lojal (median) | baseline | baseline (median) | ratio | target | |\n|---|---:|---|---:|---:|---:|---|\n")
		for _, r := range results {
			fmt.Fprintf(w, "| %s | %.0f %s | %s | %.0f | %.2f | >= %.2f | %s |\n", r.Name, bench.Median(r.Ours), r.Unit, r.BaseName,
				bench.Median(r.Baseline), r.Ratio(), r.Target, verdict(r.OK()))
		}
		if len(limits) > 0 {
			fmt.Fprintf(w, "\n| benchmark | median | limit | |\n|---|---:|---:|---|\n")
			for _, l := range limits {
				fmt.Fprintf(w, "| %s | %.3g %s | %g %s | %s |\n", l.Name, bench.Median(l.Values), l.Unit, l.Max, l.Unit, verdict(l.OK()))
			}
		}
		return
	}
	if len(limits) > 0 {
		fmt.Fprintf(w, "\npure core: medians of %d runs\n\n", rounds)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BENCHMARK\tMEDIAN\tLIMIT\t")
		for _, l := range limits {
			fmt.Fprintf(tw, "%s\t%.3g %s\t<= %g %s %s\t\n", l.Name, bench.Median(l.Values), l.Unit, l.Max, l.Unit, verdict(l.OK()))
		}
		tw.Flush()
	}
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "\nthroughput: medians of %d measurements (%s each for policy and email; 200 journeys per measurement), lojal and baseline interleaved\n\n", rounds, dur)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tLOJAL\tBASELINE\tRATIO\tTARGET\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f %s\t%.0f (%s)\t%.2f\t>= %.2f %s\t\n", r.Name, bench.Median(r.Ours), r.Unit,
			bench.Median(r.Baseline), r.BaseName, r.Ratio(), r.Target, verdict(r.OK()))
	}
	tw.Flush()
	for _, r := range results {
		fmt.Fprintf(w, "  %s: lojal %v, baseline %v\n", r.Name, round(r.Ours), round(r.Baseline))
	}
}

func verdict(ok bool) string {
	if ok {
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
