package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// The event path's benchmarks go through the path real events take: a
// POST to the API (auth, decoding, schema check, the idempotent insert),
// routing in the request path (internal/dispatch) and the run's start;
// for delivery also the workflow, the policy in Postgres, the SMTP server.

// benchAPI serves the API on loopback for the benchmarks and returns its
// base URL and a bearer token.
type benchAPI struct {
	url, token string
	srv        *httptest.Server
	client     *http.Client
}

func startAPI(ctx context.Context, st *store.Store, tc client.Client, cat catalog.Source, queue string, reorder time.Duration) (*benchAPI, error) {
	log := slog.New(slog.DiscardHandler)
	token := fmt.Sprintf("lj_bench_%d", time.Now().UnixNano())
	if _, err := st.CreateToken(ctx, "bench", token); err != nil {
		return nil, err
	}
	signer, err := links.NewSigner([]byte("bench-link-key-0123456789abcdef-0123"), "http://lojal.bench", 0)
	if err != nil {
		return nil, err
	}
	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log, TaskQueue: queue, ReorderWindow: reorder}
	srv := httptest.NewServer((&api.Server{Store: st, Dispatcher: d, Catalog: cat, Links: signer, Log: log}).Handler())
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &benchAPI{url: srv.URL, token: token, srv: srv, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (a *benchAPI) Close() { a.srv.Close() }

// dialTemporal connects to Temporal as lojal's processes do by default
// (workflows.Connection: requests not gzipped). A benchmark's lojal side
// and its baseline share the client, so both go the same way.
func dialTemporal(addr string, log *slog.Logger) (client.Client, error) {
	return client.Dial(client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(log), ConnectionOptions: workflows.Connection(false)})
}

// postEvent posts one event and wants 202 (routed in the request path).
func (a *benchAPI) postEvent(ctx context.Context, id, customer, typ, data string) error {
	body := fmt.Sprintf(`{"id": %q, "type": %q, "customer_id": %q, "at": %q, "data": %s}`, id, typ, customer,
		time.Now().UTC().Format(time.RFC3339Nano), data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/v1/events", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/events: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// DispatchOptions configure the event dispatch benchmark.
type DispatchOptions struct {
	URL             string
	TemporalAddress string
	Conc            int
	Duration        time.Duration
	Rounds          int
	Customers       int
}

// Dispatch compares events posted to the API and routed to the runs they
// start (each event starts a run; lojal starts it with the event in its
// input) with bare SignalWithStartWorkflow calls from as many clients against the same
// server, interleaved. Neither side's runs are worked on: this measures
// getting an event to its run.
func Dispatch(ctx context.Context, o DispatchOptions) (Result, error) {
	res := Result{Name: fmt.Sprintf("event dispatch, API to run, %d clients", o.Conc), Unit: "events/s",
		BaseName: "bare SignalWithStartWorkflow, same clients", Target: 0.8}
	cat, err := catalog.Load(benchJourneys, "bench")
	if err != nil {
		return res, err
	}
	st, _, closeStore, err := schemaStore(ctx, o.URL, "dispatch", o.Conc+8)
	if err != nil {
		return res, err
	}
	defer closeStore()
	if err := copyCustomers(ctx, st, "d-", o.Customers, []string{"Europe/Oslo"}, `{"first_name": "Kari"}`); err != nil {
		return res, err
	}
	tc, err := dialTemporal(o.TemporalAddress, slog.New(slog.DiscardHandler))
	if err != nil {
		return res, err
	}
	defer tc.Close()
	tag := time.Now().UnixNano()
	queue := fmt.Sprintf("bench-dispatch-%d", tag)
	a, err := startAPI(ctx, st, tc, cat, queue, 2*time.Second)
	if err != nil {
		return res, err
	}
	defer a.Close()
	round := 0
	ours := func() (float64, error) {
		round++
		r := round
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			// The run tag keeps ids (and so workflow ids) new on a
			// server an earlier run used (TEMPORAL_ADDRESS): a call that
			// finds its workflow running only signals it, far cheaper
			// for Temporal than the start the baseline makes.
			id := fmt.Sprintf("p-%d-%d-%d-%d", tag, r, w, i)
			cust := fmt.Sprintf("d-%07d", (w*100003+i*7+r)%o.Customers)
			return a.postEvent(ctx, id, cust, "bench.ping", fmt.Sprintf(`{"ping_id": %q}`, id))
		})
	}
	if _, err := ours(); err != nil { // warm-up
		return res, err
	}
	res.Ours, res.Baseline, err = alternate(o.Rounds, ours, bareSignalWithStart(ctx, tc, o, fmt.Sprintf("bench-swstart-%d", tag), queue+"-baseline"))
	return res, err
}

// bareSignalWithStart is the event dispatch benchmarks' baseline: as many
// clients calling SignalWithStartWorkflow, each call a new workflow that no
// worker runs.
func bareSignalWithStart(ctx context.Context, tc client.Client, o DispatchOptions, prefix, queue string) func() (float64, error) {
	round := 0
	return func() (float64, error) {
		round++
		r := round
		return throughput(ctx, o.Conc, o.Duration, func(ctx context.Context, w, i int) error {
			id := fmt.Sprintf("%s-%d-%d-%d", prefix, r, w, i)
			_, err := tc.SignalWithStartWorkflow(ctx, id, workflows.SignalEvent, journey.Event{ID: id}, client.StartWorkflowOptions{
				ID: id, TaskQueue: queue}, "BenchBaseline")
			return err
		})
	}
}

// LatencyOptions configure the event-to-delivery latency benchmark.
type LatencyOptions struct {
	URL             string
	TemporalAddress string
	// Events are posted one after another, Every apart.
	Events int
	Every  time.Duration
	// Enrol, when set, enrols that many customers in a scheduled journey
	// (bulk lane, routed by the sweeper) while the live events go through.
	Enrol int
	// Reorder is the runs' reorder window; the target is p99 <= Reorder + 1 s.
	Reorder time.Duration
}

// Latency measures, for an allowed high-priority message, the time from
// posting the event that triggers it to the SMTP server having it: p50 and
// p99. With Enrol, the same while a scheduled journey enrols that many
// customers (whose enrolment events go through the bulk lane): live
// events must not wait behind the sweep.
func Latency(ctx context.Context, o LatencyOptions) ([]LimitResult, error) {
	log := slog.New(slog.DiscardHandler)
	fsys := fstest.MapFS{}
	maps.Copy(fsys, benchJourneys)
	fsys["survey.yaml"] = &fstest.MapFile{Data: []byte(`id: survey
name: Quarterly survey
topic: service
priority: low
trigger: { schedule: { cron: "0 10 1 */3 *" } }
reentry: always
steps:
  - id: later
    wait: { duration: 30d }
`)}
	cat, err := catalog.Load(fsys, "bench")
	if err != nil {
		return nil, err
	}
	st, _, closeStore, err := schemaStore(ctx, o.URL, "latency", 48)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	catcher, err := mailcatch.Start(log, mailcatch.Options{})
	if err != nil {
		return nil, err
	}
	defer catcher.Close()
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + catcher.Addr, From: "lojal <hello@lojal.example>", MaxIdle: 16}, log)
	if err != nil {
		return nil, err
	}
	defer email.Close()
	signer, err := links.NewSigner([]byte("bench-link-key-0123456789abcdef-0123"), "http://lojal.bench", 0)
	if err != nil {
		return nil, err
	}
	tc, err := dialTemporal(o.TemporalAddress, log)
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	queue := fmt.Sprintf("bench-latency-%d", time.Now().UnixNano())
	acts := &activities.Activities{Store: st, Catalog: cat, Sender: channel.Mux{"email": email}, Links: signer, Log: log, MessageDomain: email.Domain()}
	ws := workflows.NewWorkers(tc, queue, acts, workflows.WorkerOptions{})
	if err := ws.Start(); err != nil {
		return nil, err
	}
	defer ws.Stop()
	a, err := startAPI(ctx, st, tc, cat, queue, o.Reorder)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	// Customer and event ids are this call's own: workflow ids are the
	// Temporal namespace's, and a run of an earlier call (its workers
	// stopped) would otherwise take this call's event.
	tag := time.Now().UnixNano() % 1e9
	customer := func(i int) string { return fmt.Sprintf("live-%d-%05d", tag, i) }
	for i := range o.Events {
		c := journey.Customer{ID: customer(i), Email: fmt.Sprintf("live%d@example.com", i), Locale: "en", Timezone: "Europe/Oslo",
			Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := st.UpsertCustomer(ctx, c, "bench"); err != nil {
			return nil, err
		}
	}
	name := "event to delivery, high priority"
	sweepDone := make(chan error, 1)
	stopSweep := func() {}
	if o.Enrol > 0 {
		name = fmt.Sprintf("live event to delivery during a %d-customer enrolment", o.Enrol)
		if err := copyCustomers(ctx, st, "s-", o.Enrol, []string{"Europe/Oslo"}, `{"first_name": "Kari"}`); err != nil {
			return nil, err
		}
		if _, err := acts.Enrol(ctx, activities.EnrolInput{JourneyID: "survey", Zones: []string{"Europe/Oslo"}, Fire: time.Now()}); err != nil {
			return nil, err
		}
		router := &dispatch.Router{Store: st, Temporal: tc, Catalog: cat, Log: log, TaskQueue: queue, ReorderWindow: o.Reorder}
		sw := &dispatch.Sweeper{Router: router}
		sctx, cancel := context.WithCancel(ctx)
		stopSweep = cancel
		go func() { _, err := sw.Sweep(sctx, workflows.SweepActivityInput{For: time.Hour}); sweepDone <- err }()
		time.Sleep(2 * time.Second) // the sweep is under way
	}
	posted := make(map[string]time.Time, o.Events)
	var mu sync.Mutex
	for i := range o.Events {
		id := fmt.Sprintf("l-%d-%05d", tag, i)
		mu.Lock()
		posted[id] = time.Now()
		mu.Unlock()
		if err := a.postEvent(ctx, id, customer(i), "bench.ping", fmt.Sprintf(`{"ping_id": %q}`, id)); err != nil {
			stopSweep()
			return nil, err
		}
		time.Sleep(o.Every)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msgs, err := catcher.WaitFor(wctx, o.Events)
	backlog := int64(0)
	if st, serr := st.DispatchStats(ctx); serr == nil {
		backlog = st.BulkBacklog
	}
	stopSweep()
	if o.Enrol > 0 {
		<-sweepDone
	}
	lost := ""
	if err != nil {
		// Not there in 2 minutes: reported, and counted as 2 minutes late.
		lost = "; " + missing(ctx, st, tc, msgs, posted)
		fmt.Fprintf(os.Stderr, "bench: %d of %d live messages did not arrive in 2 min%s\n", o.Events-len(msgs), o.Events, lost)
	}
	var secs []float64
	for _, m := range msgs {
		key := m.Header.Get("X-Lojal-Key") // journey/thanks/<customer>/<ping id>@...
		for id, at := range posted {
			if strings.Contains(key, "/"+id+"@") {
				secs = append(secs, m.ReceivedAt.Sub(at).Seconds())
			}
		}
	}
	if lost == "" && len(secs) != o.Events {
		return nil, fmt.Errorf("matched %d deliveries to %d events", len(secs), o.Events)
	}
	for len(secs) < o.Events {
		secs = append(secs, (2 * time.Minute).Seconds())
	}
	slices.Sort(secs)
	pct := func(p float64) float64 { return secs[min(len(secs)-1, int(p*float64(len(secs))))] }
	limit := (o.Reorder + time.Second).Seconds()
	note := ""
	if o.Enrol > 0 {
		note = fmt.Sprintf(" (bulk backlog at the end %d)", backlog)
	}
	return []LimitResult{
		{Name: name + ", p50" + note, Unit: "s", Values: []float64{pct(0.5)}, Max: limit},
		{Name: name + ", p99" + note, Unit: "s", Values: []float64{pct(0.99)}, Max: limit},
	}, nil
}

// missing says what became of live events whose message did not arrive.
func missing(ctx context.Context, st *store.Store, tc client.Client, msgs []mailcatch.Message, posted map[string]time.Time) string {
	var out []string
	for id := range posted {
		found := false
		for _, m := range msgs {
			if strings.Contains(m.Header.Get("X-Lojal-Key"), "/"+id+"@") {
				found = true
				break
			}
		}
		if found {
			continue
		}
		var dispatched, routes, ledger string
		_ = st.Pool().QueryRow(ctx, `SELECT coalesce(dispatched_at::text, 'not dispatched') || ', attempts ' || attempts || ', ' || dispatch_error
			FROM events WHERE id = $1`, id).Scan(&dispatched)
		_ = st.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(action || ' ' || reason, '; '), 'no routes') FROM event_routes WHERE event_id = $1`, id).
			Scan(&routes)
		_ = st.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(decision || ' ' || reason || ' ' || status, '; '), 'no decisions')
			FROM contact_ledger WHERE workflow_id LIKE '%' || $1 || '%'`, id).Scan(&ledger)
		run := "no run"
		wid := workflows.WorkflowID("thanks", "live-"+strings.TrimPrefix(id, "l-"), id) // l-<tag>-<i> was posted for live-<tag>-<i>
		if d, err := tc.DescribeWorkflowExecution(ctx, wid, ""); err == nil {
			run = fmt.Sprintf("%s on %s, %d history events, %d pending activities", d.GetWorkflowExecutionInfo().GetStatus(),
				d.GetExecutionConfig().GetTaskQueue().GetName(), d.GetWorkflowExecutionInfo().GetHistoryLength(), len(d.GetPendingActivities()))
			for _, a := range d.GetPendingActivities() {
				run += fmt.Sprintf(" [%s %s attempt %d %s]", a.GetActivityType().GetName(), a.GetState(), a.GetAttempt(), a.GetLastFailure().GetMessage())
			}
		}
		var hist []string
		iter := tc.GetWorkflowHistory(ctx, wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				break
			}
			h := strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")
			if m := ev.GetMarkerRecordedEventAttributes(); m != nil {
				h += " " + m.GetMarkerName()
				if ps := m.GetDetails()["change-id"].GetPayloads(); len(ps) > 0 {
					h += " " + string(ps[0].GetData())
				}
			}
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				h += " " + a.GetActivityType().GetName()
			}
			if a := ev.GetTimerStartedEventAttributes(); a != nil {
				h += " " + a.GetStartToFireTimeout().AsDuration().String()
			}
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
				h += " " + a.GetSignalName()
			}
			hist = append(hist, h)
		}
		run += " history: " + strings.Join(hist, ", ")
		out = append(out, fmt.Sprintf("%s: event %s; routes %s; ledger %s; run %s", id, dispatched, routes, ledger, run))
	}
	var waits string
	_ = st.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(state || ' ' || coalesce(wait_event_type, '') || ' ' || left(query, 60), ' | '), 'none')
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&waits)
	return "missing: " + strings.Join(out, " | ") + "; busy sessions: " + waits
}
