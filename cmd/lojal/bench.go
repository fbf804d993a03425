package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
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
	rounds := fs.Int("rounds", 5, "measurements of lojal (the baseline is measured once more, around each); the median is reported")
	only := fs.String("only", "", "comma-separated subset: core, policy, email, ingest, enrol, journey, dispatch, rate, replies; "+
		"dispatch-b (the design docs/scaling.md rejected, prototyped) and ledger (it builds 10M ledger rows) run only when named")
	enrolLive := fs.Int("dispatch-enrol", 100000, "dispatch: customers a scheduled journey enrols while live events go through")
	rate := fs.Float64("rate", 50, "rate: the email rate to configure, messages a second")
	rateMessages := fs.Int("rate-messages", 1000, "rate: messages to send at that rate")
	markdown := fs.Bool("markdown", false, "print the table as Markdown (docs/benchmarks.md)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the API, routing, workers) to FILE (go tool pprof)")
	ledgerRows := fs.Int("ledger-rows", 10_000_000, "ledger: rows of ledger to decide against")
	ledgerCustomers := fs.Int("ledger-customers", 1_000_000, "ledger: customers they concern")
	ledgerCache := fs.Bool("ledger-cache", false, "ledger, for development only: keep the built ledger in the server DATABASE_URL names "+
		"and reuse it in the next run (never for a published number)")
	ledgerEnrol := fs.Bool("ledger-enrol", true, "ledger: also the scheduled enrolment of 100,000 then 1,000,000 customers")
	if err := loadInto(fs, args, &cfg); err != nil {
		return err
	}
	if *ledgerCache && cfg.DatabaseURL == "" {
		return fmt.Errorf("bench: --ledger-cache keeps the ledger in a server of your own: set DATABASE_URL to it")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	want := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	named := func(name string) bool { return slices.Contains(strings.Split(*only, ","), name) }
	// The ledger benchmark takes long and much disk: only when asked for.
	wantLedger := named("ledger")
	log := slog.New(slog.DiscardHandler)
	var results []bench.Result
	var costs *bench.Costs
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
	if dbURL == "" && (want("policy") || want("journey") || want("ingest") || want("enrol") || want("rate") || want("dispatch") || want("replies") || named("dispatch-b") || wantLedger) {
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
	if want("ingest") {
		fmt.Fprintln(stderr, "bench: event ingest through the API ...")
		cat, err := loadCatalog(cfg.Journeys)
		if err != nil {
			return err
		}
		rs, err := bench.Ingest(ctx, bench.IngestOptions{URL: dbURL, Journeys: cat, Conc: 16, Duration: *dur, Rounds: *rounds, Customers: 10000, Batch: 100})
		if err != nil {
			return fmt.Errorf("ingest benchmark: %w", err)
		}
		limits = append(limits, rs...)
	}
	var enrol []bench.EnrolResult
	if want("enrol") {
		fmt.Fprintln(stderr, "bench: enrolling 20,000 then 100,000 customers from a scheduled audience ...")
		cat, err := loadCatalog(cfg.Journeys)
		if err != nil {
			return err
		}
		if enrol, err = bench.Enrol(ctx, bench.EnrolOptions{URL: dbURL, Journeys: cat, Journey: "checkin", Sizes: []int{20000, 100000}}); err != nil {
			return fmt.Errorf("enrolment benchmark: %w", err)
		}
	}
	if wantLedger {
		fmt.Fprintf(stderr, "bench: ledger of %d rows, %d customers (building it takes minutes) ...\n", *ledgerRows, *ledgerCustomers)
		r, err := bench.Ledger(ctx, bench.LedgerOptions{URL: dbURL, Rows: *ledgerRows, Months: 12, Customers: *ledgerCustomers, Conc: 8,
			Duration: *dur, Rounds: *rounds, Cache: *ledgerCache, Progress: func(s string) { fmt.Fprintf(stderr, "bench: ledger: %s\n", s) }})
		if err != nil {
			return fmt.Errorf("ledger benchmark: %w", err)
		}
		fmt.Fprintf(stderr, "bench: ledger built in %s\n", r.Fill.Round(time.Second))
		results = append(results, r.Decisions)
		limits = append(limits, r.Limits...)
	}
	if wantLedger && *ledgerEnrol {
		fmt.Fprintln(stderr, "bench: enrolling 100,000 then 1,000,000 customers across 20 time zones ...")
		cat, err := loadCatalog(cfg.Journeys)
		if err != nil {
			return err
		}
		if enrol, err = bench.Enrol(ctx, bench.EnrolOptions{URL: dbURL, Journeys: cat, Journey: "checkin", Sizes: []int{100000, 1000000}, Zones: 20}); err != nil {
			return fmt.Errorf("enrolment benchmark: %w", err)
		}
	}
	temporalAddr := cfg.TemporalAddress
	if os.Getenv("TEMPORAL_ADDRESS") == "" && (want("journey") || want("rate") || want("dispatch") || want("replies") || named("dispatch-b")) {
		fmt.Fprintln(stderr, "bench: starting the Temporal dev server ...")
		t, err := devstack.StartTemporal(ctx, log, devstack.TemporalOptions{})
		if err != nil {
			return err
		}
		defer t.Stop()
		temporalAddr = t.Address
	}
	if want("journey") {
		fmt.Fprintln(stderr, "bench: journeys end to end ...")
		r, c, err := bench.Journey(ctx, bench.JourneyOptions{URL: dbURL, TemporalAddress: temporalAddr, PerRound: 200, Rounds: *rounds, Conc: 32})
		if err != nil {
			return fmt.Errorf("journey benchmark: %w", err)
		}
		results = append(results, r)
		costs = &c
	}
	if want("dispatch") {
		fmt.Fprintln(stderr, "bench: event dispatch, API to run ...")
		r, err := bench.Dispatch(ctx, bench.DispatchOptions{URL: dbURL, TemporalAddress: temporalAddr, Conc: 16, Duration: *dur, Rounds: *rounds,
			Customers: 10000})
		if err != nil {
			return fmt.Errorf("dispatch benchmark: %w", err)
		}
		results = append(results, r)
		fmt.Fprintln(stderr, "bench: event-to-delivery latency ...")
		lat, err := bench.Latency(ctx, bench.LatencyOptions{URL: dbURL, TemporalAddress: temporalAddr, Events: 200, Every: 50 * time.Millisecond,
			Reorder: cfg.ReorderWindow})
		if err != nil {
			return fmt.Errorf("latency benchmark: %w", err)
		}
		limits = append(limits, lat...)
		if *enrolLive > 0 {
			fmt.Fprintf(stderr, "bench: live-event latency while %d customers are enrolled ...\n", *enrolLive)
			lat, err := bench.Latency(ctx, bench.LatencyOptions{URL: dbURL, TemporalAddress: temporalAddr, Events: 200, Every: 250 * time.Millisecond,
				Reorder: cfg.ReorderWindow, Enrol: *enrolLive})
			if err != nil {
				return fmt.Errorf("latency during enrolment: %w", err)
			}
			limits = append(limits, lat...)
		}
	}
	if named("dispatch-b") {
		fmt.Fprintln(stderr, "bench: event dispatch, design (b) prototype ...")
		r, err := bench.DispatchPartitioned(ctx, bench.DispatchOptions{URL: dbURL, TemporalAddress: temporalAddr, Conc: 16, Duration: *dur,
			Rounds: *rounds, Customers: 10000}, 3)
		if err != nil {
			return fmt.Errorf("dispatch design (b) benchmark: %w", err)
		}
		results = append(results, r)
	}
	var sendRate *bench.RateResult
	if want("rate") {
		fmt.Fprintf(stderr, "bench: %d emails at a configured %g a second, 4 workers ...\n", *rateMessages, *rate)
		r, err := bench.Rate(ctx, bench.RateOptions{URL: dbURL, TemporalAddress: temporalAddr, Rate: *rate, Messages: *rateMessages, Workers: 4})
		if err != nil {
			return fmt.Errorf("rate benchmark: %w", err)
		}
		sendRate = &r
	}
	if want("replies") {
		fmt.Fprintln(stderr, "bench: 1,000 replies over SMTP to the inbound intake ...")
		cat, err := loadCatalog(cfg.Journeys)
		if err != nil {
			return err
		}
		r, detail, err := bench.Replies(ctx, bench.RepliesOptions{URL: dbURL, TemporalAddress: temporalAddr, Journeys: cat, Replies: 1000, Conc: 8})
		if err != nil {
			return fmt.Errorf("replies benchmark: %w", err)
		}
		fmt.Fprintf(stderr, "bench: replies: %s\n", detail)
		limits = append(limits, r)
	}
	printResults(stdout, results, limits, *rounds, *dur, *markdown)
	printEnrol(stdout, enrol, *markdown)
	printRate(stdout, sendRate, *markdown)
	printCosts(stdout, costs, *markdown)
	return nil
}

// printCosts shows what one journey run cost each tier.
func printCosts(w io.Writer, c *bench.Costs, markdown bool) {
	if c == nil {
		return
	}
	var tables []string
	for _, t := range c.ByTable {
		tables = append(tables, fmt.Sprintf("%s %.1f", t.Table, t.Writes))
	}
	if markdown {
		fmt.Fprintf(w, "\n| cost per journey run (one event, one email) | measured |\n|---|---:|\n")
		fmt.Fprintf(w, "| Temporal history events (%d runs) | %.1f |\n| Temporal actions | %.1f |\n", c.Runs, c.HistoryEvents, c.Actions)
		fmt.Fprintf(w, "| Postgres row writes per message | %.1f (%s) |\n| Postgres commits per message | %.1f |\n| WAL per message | %.1f KiB |\n",
			c.RowWrites, strings.Join(tables, ", "), c.Commits, c.WALBytes/1024)
		return
	}
	fmt.Fprintf(w, "\ncost per journey run (one event, one email; %d runs sampled):\n", c.Runs)
	fmt.Fprintf(w, "  Temporal: %.1f history events, %.1f actions\n", c.HistoryEvents, c.Actions)
	fmt.Fprintf(w, "  Postgres: %.1f row writes per message (%s), %.1f commits, %.1f KiB WAL\n", c.RowWrites, strings.Join(tables, ", "),
		c.Commits, c.WALBytes/1024)
}

// printRate shows the send rate the server held the email queue to.
func printRate(w io.Writer, r *bench.RateResult, markdown bool) {
	if r == nil {
		return
	}
	if markdown {
		fmt.Fprintf(w, "\n| send rate | configured | achieved | deviation | busiest second (steady) | lost | sent twice | |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
		fmt.Fprintf(w, "| %d emails, %d workers | %g/s | %.1f/s | %+.1f%% | %d (%d) | %d | %d | %s |\n", r.Messages, r.Workers, r.Configured, r.Achieved,
			100*r.Deviation(), r.PeakSecond, r.SteadyPeak, r.Lost, r.Duplicates, verdict(r.OK()))
		return
	}
	fmt.Fprintf(w, "\nsend rate: %d emails from a backlog, %d workers each configured with %g a second\n\n", r.Messages, r.Workers, r.Configured)
	fmt.Fprintf(w, "  achieved %.1f a second (%+.1f%%, target within 10%%), busiest second %d (%d once the queue's first burst is over), took %s; lost %d, sent twice %d: %s\n",
		r.Achieved, 100*r.Deviation(), r.PeakSecond, r.SteadyPeak, r.Took.Round(100*time.Millisecond), r.Lost, r.Duplicates, verdict(r.OK()))
}

// printEnrol shows memory at each audience size: flat means the peak does
// not grow with the audience.
func printEnrol(w io.Writer, rs []bench.EnrolResult, markdown bool) {
	if len(rs) == 0 {
		return
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	if markdown {
		fmt.Fprintf(w, "\n| scheduled enrolment | enrolled | time | peak RSS | peak Go heap |\n|---:|---:|---:|---:|---:|\n")
	} else {
		fmt.Fprintf(w, "\nscheduled enrolment (pages of 1,000), process memory after each size\n\n")
	}
	for _, r := range rs {
		if markdown {
			fmt.Fprintf(w, "| %d customers | %d | %.1f s | %.0f MiB | %.0f MiB |\n", r.Size, r.Enrolled, r.Took.Seconds(), mb(r.PeakRSS), mb(int64(r.PeakHeap)))
		} else {
			fmt.Fprintf(w, "  %7d customers: %7d enrolled in %5.1f s, peak RSS %4.0f MiB, peak Go heap %4.0f MiB\n",
				r.Size, r.Enrolled, r.Took.Seconds(), mb(r.PeakRSS), mb(int64(r.PeakHeap)))
		}
	}
	first, last := rs[0], rs[len(rs)-1]
	growth := mb(last.PeakRSS) - mb(first.PeakRSS)
	ok := growth < 64 && last.Enrolled == last.Size
	fmt.Fprintf(w, "  peak RSS grew %.0f MiB from %d to %d customers (flat means < 64 MiB): %s\n", growth, first.Size, last.Size, verdict(ok))
	// Time should grow no faster than the audience.
	sizeX, timeX := float64(last.Size)/float64(first.Size), last.Took.Seconds()/first.Took.Seconds()
	fmt.Fprintf(w, "  time grew %.1fx for %.0fx the customers (at most %.0fx): %s\n", timeX, sizeX, sizeX, verdict(timeX <= sizeX))
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
				fmt.Fprintf(w, "| %s | %s %s | %s | %s |\n", l.Name, num(bench.Median(l.Values)), l.Unit, l.Limit(), verdict(l.OK()))
			}
		}
		return
	}
	if len(limits) > 0 {
		fmt.Fprintf(w, "\nabsolute limits: medians of %d runs\n\n", rounds)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BENCHMARK\tMEDIAN\tLIMIT\t")
		for _, l := range limits {
			fmt.Fprintf(tw, "%s\t%s %s\t%s %s\t\n", l.Name, num(bench.Median(l.Values)), l.Unit, l.Limit(), verdict(l.OK()))
		}
		tw.Flush()
	}
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "\nthroughput: medians of %d measurements (%s each for policy and email; 200 journeys per measurement), each of lojal's between two of the baseline's; the ratio is the median of each of lojal's against the mean of the two around it\n\n", rounds, dur)
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

// num prints a measurement with sensible precision.
func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
