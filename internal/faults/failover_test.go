//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/workflows"
)

// replica is one API process and one worker process.
type replica struct {
	api, worker *workerProcess
	url         string
}

func (r *replica) signal(sig syscall.Signal) {
	r.api.signal(sig)
	r.worker.signal(sig)
}

// tracker is servers of a test's own with the tracker journeys deployed
// and customers prefix-0000, prefix-0001, ... who take email.
type tracker struct {
	*servers
	// d stores events without routing them (no Temporal), as a replica
	// that died after storing them leaves them.
	d *ingest.Dispatcher
	// env is what every lojal process of the test is started with.
	env []string
}

func startTracker(t *testing.T, log *slog.Logger, prefix string, customers int) tracker {
	t.Helper()
	ctx := context.Background()
	srv := ownServers(t, log, devstack.TemporalOptions{})
	dir, _ := filepath.Abs("testdata/tracker")
	cat, err := catalog.Load(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &ingest.Dispatcher{Store: srv.st, Catalog: cat, Log: log}
	for i := range customers {
		c := journey.Customer{ID: fmt.Sprintf("%s-%04d", prefix, i), Email: fmt.Sprintf("%s-%04d@example.no", prefix, i), Locale: "en",
			Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := d.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"DATABASE_URL=" + srv.cfg.URL + "&search_path=" + srv.cfg.Schema, "TEMPORAL_ADDRESS=" + srv.temporal.Address,
		"LOJAL_JOURNEYS=" + dir, "LOJAL_LINK_KEY=fault-tests-link-key-0123456789abcdef", "LOJAL_LOG_LEVEL=warn",
		"LOJAL_SHUTDOWN_TIMEOUT=1s", "LOJAL_METRICS_ADDR=", "LOJAL_DEV_MODE=true"}
	return tracker{servers: srv, d: d, env: env}
}

// TestFaultReplicaFailover: three API/worker replicas take a stream of
// 5,000 events for 500 customers (a start, then nine numbered steps each,
// every one told back to the customer by email). One replica is killed
// (SIGKILL) a third of the way in, another stopped (SIGSTOP) for 30 s
// halfway; clients move to another replica when one does not answer. No
// event is lost, none reaches a run twice, every customer's steps arrive
// in order, and no event waits more than 10 s to reach its run.
func TestFaultReplicaFailover(t *testing.T) {
	const customers, steps = 500, 10
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := startTracker(t, log, "f", customers)
	tc, st, catcher, common := tr.tc, tr.st, tr.catcher, tr.env
	token := "lj_failover_0123456789"
	if _, err := st.CreateToken(ctx, "failover", token); err != nil {
		t.Fatal(err)
	}
	var replicas []*replica
	for i := range 3 {
		logFile, err := os.CreateTemp(t.TempDir(), fmt.Sprintf("replica-%d-*.log", i))
		if err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		r := &replica{url: "http://" + addr,
			api: &workerProcess{args: []string{"api"}, log: logFile, env: append(slices.Clone(common), "LOJAL_HTTP_ADDR="+addr,
				"LOJAL_PUBLIC_URL=http://"+addr)},
			worker: &workerProcess{log: logFile, env: append(slices.Clone(common), "SMTP_URL=smtp://"+catcher.Addr, "LOJAL_HTTP_ADDR="+freeAddr(t))}}
		r.api.start(t)
		r.worker.start(t)
		t.Cleanup(func() { r.signal(syscall.SIGCONT); r.api.kill(); r.worker.kill() })
		replicas = append(replicas, r)
	}
	// Wait for the APIs to answer.
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, r := range replicas {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if resp, err := hc.Get(r.url + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("API %s did not start", r.url)
			}
		}
	}

	// post sends an event to replica i, moving on to the next when one
	// does not answer in 2 s, as a client with several API addresses does.
	post := func(i int, id, typ, cust, data string) error {
		body := fmt.Sprintf(`{"id": %q, "type": %q, "customer_id": %q, "at": %q, "data": %s}`, id, typ, cust,
			time.Now().UTC().Format(time.RFC3339Nano), data)
		deadline := time.Now().Add(2 * time.Minute)
		var last error
		for k := 0; time.Now().Before(deadline); k++ {
			r := replicas[(i+k)%len(replicas)]
			req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/events", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				last = err
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %d %s", r.url, resp.StatusCode, b)
		}
		return fmt.Errorf("event %s: %w", id, last)
	}
	var posted atomic.Int64
	faults := make(chan struct{})
	go func() {
		defer close(faults)
		for posted.Load() < int64(customers*steps)/3 {
			time.Sleep(50 * time.Millisecond)
		}
		replicas[0].signal(syscall.SIGKILL)
		t.Logf("replica 0 killed after %d events", posted.Load())
		for posted.Load() < int64(customers*steps)/2 {
			time.Sleep(50 * time.Millisecond)
		}
		replicas[1].signal(syscall.SIGSTOP)
		t.Logf("replica 1 stopped after %d events", posted.Load())
		time.Sleep(30 * time.Second)
		replicas[1].signal(syscall.SIGCONT)
		t.Logf("replica 1 resumed")
	}()
	start := time.Now()
	for k := 1; k <= steps; k++ {
		var wg sync.WaitGroup
		errs := make(chan error, customers)
		sem := make(chan struct{}, 16)
		for i := range customers {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				cust, track := fmt.Sprintf("f-%04d", i), fmt.Sprintf("t-%04d", i)
				id := fmt.Sprintf("e-%04d-%02d", i, k)
				typ, data := "track.start", fmt.Sprintf(`{"track_id": %q}`, track)
				if k > 1 {
					typ, data = "track.step", fmt.Sprintf(`{"track_id": %q, "n": %d}`, track, k)
				}
				if err := post(i, id, typ, cust, data); err != nil {
					errs <- err
				}
				posted.Add(1)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	<-faults
	t.Logf("%d events posted in %s", customers*steps, time.Since(start).Round(time.Second))
	wctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	for i := range customers {
		id := workflows.WorkflowID("tracker", fmt.Sprintf("f-%04d", i), fmt.Sprintf("t-%04d", i))
		if err := tc.GetWorkflow(wctx, id, "").Get(wctx, nil); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	time.Sleep(time.Second)

	// What each customer was told, in order.
	got := map[string][]int{}
	for _, m := range catcher.Messages() {
		n, err := strconv.Atoi(strings.TrimPrefix(m.Header.Get("Subject"), "step "))
		if err == nil && len(m.To) == 1 {
			got[m.To[0]] = append(got[m.To[0]], n)
		}
	}
	lost, twice, disordered := 0, 0, 0
	for i := range customers {
		seq := got[fmt.Sprintf("f-%04d@example.no", i)]
		seen := map[int]int{}
		for _, n := range seq {
			seen[n]++
		}
		for n := 2; n <= steps; n++ {
			switch c := seen[n]; {
			case c == 0:
				lost++
			case c > 1:
				twice += c - 1
			}
		}
		if !slices.IsSorted(seq) {
			disordered++
		}
	}
	var worst float64
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM first - e.received_at)), 0)::float8
		FROM events e JOIN (SELECT event_id, min(routed_at) AS first FROM event_routes GROUP BY event_id) r ON r.event_id = e.id`).Scan(&worst); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica failover: %d events; lost %d, reached a run twice %d, customers out of order %d, worst delay to the run %.1f s",
		customers*steps, lost, twice, disordered, worst)
	fmt.Printf("FAULT replica-failover: events %d, lost %d, delivered twice %d, out of order %d, worst delay %.1fs\n",
		customers*steps, lost, twice, disordered, worst)
	if lost > 0 || twice > 0 || disordered > 0 || worst > 10 {
		b, _ := os.ReadFile(replicas[2].api.log.Name())
		t.Fatalf("lost %d, twice %d, out of order %d, worst delay %.1f s\nslowest events:\n%s\nlog tail:\n%s", lost, twice, disordered, worst,
			slowest(st.Pool()), tail(string(b), 3000))
	}
}

// slowest describes the five events that took longest to reach a run:
// when each was received, routed and marked dispatched, how often routing
// failed, and its routes.
func slowest(pool *pgxpool.Pool) string {
	rows, err := pool.Query(context.Background(), `
		SELECT e.id, e.customer_id, e.received_at, e.dispatched_at, e.attempts, e.dispatch_error,
		       string_agg(r.action || ' ' || r.reason || ' at ' || r.routed_at::text, '; ')
		FROM events e JOIN event_routes r ON r.event_id = e.id
		GROUP BY e.id, e.customer_id, e.received_at, e.dispatched_at, e.attempts, e.dispatch_error
		ORDER BY min(r.routed_at) - e.received_at DESC LIMIT 5`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, cust, errText, routes string
		var received time.Time
		var dispatched *time.Time
		var attempts int
		if err := rows.Scan(&id, &cust, &received, &dispatched, &attempts, &errText, &routes); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "  %s (%s) received %s, dispatched %v, attempts %d %s; routes: %s\n", id, cust, received.Format("15:04:05.000"),
			dispatched, attempts, errText, routes)
	}
	return b.String()
}
