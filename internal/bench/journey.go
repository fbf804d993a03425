package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing/fstest"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/workflows"
)

// benchJourneys is a journeys directory with one journey: an event starts
// it, it sends one email, it ends. The policy has no quiet hours so the
// benchmark does not depend on the time of day.
var benchJourneys = fstest.MapFS{
	"schema.yaml": {Data: []byte("customer:\n  first_name: required string\nevents:\n  bench.ping: { ping_id: string }\n")},
	"policy.yaml": {Data: []byte("default_timezone: Europe/Oslo\nmin_gap: 24h\ncaps:\n  - { window: 7d, max: 3 }\nmax_defer: 7d\ntopics:\n  service: { kind: service }\n")},
	// High priority, like a transactional receipt: messages below high
	// wait 5s before their first ask (see workflows.settle), which would
	// make this a measure of that pause rather than of throughput.
	"thanks.yaml": {Data: []byte(`id: thanks
name: Thanks
topic: service
priority: high
trigger: { event: bench.ping }
key: event.ping_id
reentry: always
steps:
  - id: thank
    send: { channel: email, template: thanks, purpose: '"thanks:" + event.ping_id' }
`)},
	"templates/thanks/en.yaml": {Data: []byte("subject: \"Thank you, {{ .Customer.first_name }}\"\ntext: |\n  Hi {{ .Customer.first_name }}, thank you for {{ .Event.ping_id }}.\nhtml: \"<p>Hi {{ .Customer.first_name }}, thank you for {{ .Event.ping_id }}.</p>\"\n")},
}

// JourneyOptions configure the journey benchmark.
type JourneyOptions struct {
	URL             string
	TemporalAddress string
	// PerRound journeys are started and awaited per measurement.
	PerRound int
	Rounds   int
	Conc     int
}

// Journey compares customer journeys with a send step, completed per
// second through the real stack (ingest, workflow, policy decision in
// Postgres, rendering, SMTP delivery, outcome), with a bare workflow that
// runs one no-op activity, on the same Temporal dev server.
//
// One more round after the measurements is taken apart for what a run
// costs each tier (Costs).
func Journey(ctx context.Context, o JourneyOptions) (Result, Costs, error) {
	var costs Costs
	res := Result{Name: "journeys with a send step, end to end through the API and routing", Unit: "journeys/s",
		BaseName: "bare one-activity workflow started with SignalWithStart", Target: 0.8}
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.Load(benchJourneys, "bench")
	if err != nil {
		return res, costs, err
	}
	st, schema, closeStore, err := schemaStore(ctx, o.URL, "journey", 32)
	if err != nil {
		return res, costs, err
	}
	defer closeStore()
	catcher, err := mailcatch.Start(log, mailcatch.Options{Discard: true})
	if err != nil {
		return res, costs, err
	}
	defer catcher.Close()
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + catcher.Addr, From: "lojal <hello@lojal.example>", MaxIdle: 16}, log)
	if err != nil {
		return res, costs, err
	}
	defer email.Close()
	signer, err := links.NewSigner([]byte("bench-link-key-0123456789abcdef-0123"), "http://lojal.bench", 0)
	if err != nil {
		return res, costs, err
	}
	tc, err := dialTemporal(o.TemporalAddress, log)
	if err != nil {
		return res, costs, err
	}
	defer tc.Close()
	queue := fmt.Sprintf("bench-journeys-%d", time.Now().UnixNano())
	ws := workflows.NewWorkers(tc, queue, &activities.Activities{Store: st, Catalog: cat, Sender: channel.Mux{"email": email}, Links: signer,
		Log: log, MessageDomain: email.Domain()}, workflows.WorkerOptions{})
	baseQueue := queue + "-baseline"
	bw := worker.New(tc, baseQueue, worker.Options{})
	bw.RegisterWorkflowWithOptions(baselineWorkflow, workflow.RegisterOptions{Name: "BenchBaseline"})
	bw.RegisterActivityWithOptions(noop, activityOptions("BenchNoop"))
	for _, wk := range append(ws, bw) {
		if err := wk.Start(); err != nil {
			return res, costs, err
		}
		defer wk.Stop()
	}
	total := o.PerRound * (o.Rounds + 2)
	for i := range total {
		c := journey.Customer{ID: fmt.Sprintf("c-%06d", i), Email: fmt.Sprintf("c%d@example.com", i), Locale: "en", Timezone: "Europe/Oslo",
			Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := st.UpsertCustomer(ctx, c, "bench"); err != nil {
			return res, costs, err
		}
	}
	// Events go the way real ones do: posted to the API, routed in the
	// request path, started with the event in their input.
	a, err := startAPI(ctx, st, tc, cat, queue, 2*time.Second)
	if err != nil {
		return res, costs, err
	}
	defer a.Close()
	round := 0
	ours := func() (float64, error) {
		first := round * o.PerRound
		round++
		return timed(o.PerRound, o.Conc, func(i int) error {
			cid := fmt.Sprintf("c-%06d", first+i)
			id := "e-" + cid
			if err := a.postEvent(ctx, id, cid, "bench.ping", fmt.Sprintf(`{"ping_id": %q}`, cid)); err != nil {
				return err
			}
			var r workflows.JourneyResult
			if err := tc.GetWorkflow(ctx, workflows.WorkflowID("thanks", cid, cid), "").Get(ctx, &r); err != nil {
				return err
			}
			if r.Sent != 1 {
				return fmt.Errorf("journey for %s sent %d messages", cid, r.Sent)
			}
			return nil
		})
	}
	base := func() (float64, error) {
		tag := time.Now().UnixNano()
		return timed(o.PerRound, o.Conc, func(i int) error {
			id := fmt.Sprintf("bench-baseline-%d-%d", tag, i)
			run, err := tc.SignalWithStartWorkflow(ctx, id, workflows.SignalEvent, journey.Event{ID: id},
				client.StartWorkflowOptions{ID: id, TaskQueue: baseQueue}, "BenchBaseline")
			if err != nil {
				return err
			}
			return run.Get(ctx, nil)
		})
	}
	// One warm-up round each: caches, connections, JIT of the dev server.
	if _, err := ours(); err != nil {
		return res, costs, err
	}
	if _, err := base(); err != nil {
		return res, costs, err
	}
	if res.Ours, res.Baseline, err = alternate(o.Rounds, ours, base); err != nil {
		return res, costs, err
	}
	// Statistics reach pg_stat_* when a backend goes idle, up to 10 s late.
	time.Sleep(11 * time.Second)
	before, err := readPGCounters(ctx, st.Pool(), schema)
	if err != nil {
		return res, costs, err
	}
	first := round * o.PerRound
	if _, err := ours(); err != nil {
		return res, costs, err
	}
	time.Sleep(11 * time.Second)
	after, err := readPGCounters(ctx, st.Pool(), schema)
	if err != nil {
		return res, costs, err
	}
	costs.addPG(before, after, o.PerRound)
	var ids []string
	for i := range min(o.PerRound, 50) {
		cid := fmt.Sprintf("c-%06d", first+i)
		ids = append(ids, workflows.WorkflowID("thanks", cid, cid))
	}
	if err := costs.addHistories(ctx, tc, ids); err != nil {
		return res, costs, err
	}
	if catcher.Count() != total {
		return res, costs, fmt.Errorf("SMTP server received %d messages, want %d", catcher.Count(), total)
	}
	return res, costs, nil
}

func baselineWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteActivity(ctx, "BenchNoop").Get(ctx, nil)
}

func noop(context.Context) error { return nil }

// timed runs n operations from conc goroutines and returns operations per
// second over the wall time of all of them.
func timed(n, conc int, op func(i int) error) (float64, error) {
	start := time.Now()
	next := make(chan int)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			return 0, err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func activityOptions(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}
