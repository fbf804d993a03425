package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"sigs.k8s.io/yaml"

	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/workflows"
)

// TestOperatorsView runs `lojal worker` and `lojal api` as an operator
// would (flags and environment, real Postgres, the Temporal dev server,
// an SMTP server) and checks what they show: `lojal status` before and
// after workers poll; the Temporal SDK's metrics on the worker's and the
// API's /metrics, under the SDK's names, beside lojal's; and that every
// metric the shipped Grafana dashboard and alert rules read is one that
// lojal or the SDK really exports.
//
// It is not parallel: the worker takes lojal-journeys, the default task
// queue, on the dev server the package's tests share.
func TestOperatorsView(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	temporal := stacktest.TemporalAddress(t)
	// The relay refuses each message's first end of data with a
	// temporary error, so that the worker has an activity failure to
	// report; the retry goes through.
	catcher, err := mailcatch.Start(slog.New(slog.DiscardHandler), mailcatch.Options{AfterData: func(_ mailcatch.Message, attempt int) mailcatch.Reply {
		if attempt == 1 {
			return mailcatch.Reply{Action: mailcatch.Refuse, Code: 450, Text: "4.2.1 mailbox busy, try again"}
		}
		return mailcatch.Reply{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer catcher.Close()
	tc, err := client.Dial(client.Options{HostPort: temporal})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	common := []string{"--database-url", db, "--temporal-address", temporal, "--journeys", "testdata/ops-journeys"}
	status := func() (string, int) {
		out, err := runCLI(t, append([]string{"status"}, common...)...)
		return out, exitCode(err)
	}

	// Nothing runs yet: status says what is missing, and exits 1.
	out, code := status()
	if code != 1 {
		t.Fatalf("status with no workers: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"no worker polls lojal-journeys for workflow tasks", "no worker polls lojal-journeys-email for activity tasks",
		"the sweeper schedule lojal-sweeper does not exist", "the scheduler of monthly-hello is not started", "monthly-hello  next "} {
		if !strings.Contains(out, want) {
			t.Errorf("status with no workers lacks %q:\n%s", want, out)
		}
	}

	workerHTTP, workerMetrics, apiHTTP, apiMetrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	link := []string{"--public-url", "http://127.0.0.1:1", "--dev-mode", "--link-key", "ops-test-link-key-0123456789abcdef", "--log-format", "json"}
	procCtx, stopProcs := context.WithCancel(ctx)
	var procs sync.WaitGroup
	logs := &syncBuffer{}
	start := func(args ...string) {
		procs.Go(func() {
			if err := run(procCtx, args, logs, logs); err != nil && procCtx.Err() == nil {
				t.Errorf("lojal %s: %v", args[0], err)
			}
		})
	}
	t.Cleanup(func() {
		stopProcs()
		procs.Wait()
		if t.Failed() {
			t.Logf("worker and api logs:\n%s", logs.String())
		}
		// The dev server outlives the test: leave nothing running on the
		// default queue for the tests after this one.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = tc.ScheduleClient().GetHandle(cctx, dispatch.SweeperScheduleID).Delete(cctx)
		for _, id := range []string{workflows.ScheduleID("monthly-hello"), dispatch.SweeperScheduleID} {
			_ = tc.TerminateWorkflow(cctx, id, "", "test over")
		}
	})
	start(append(append([]string{"worker", "--smtp-url", "smtp://" + catcher.Addr, "--http-addr", workerHTTP, "--metrics-addr", workerMetrics}, common...), link...)...)
	start(append(append([]string{"api", "--http-addr", apiHTTP, "--metrics-addr", apiMetrics, "--reorder-window", "0s"}, common...), link...)...)
	waitHTTP(t, ctx, "http://"+apiHTTP+"/readyz")

	out, err = runCLI(t, "api", "token", "create", "--name", "ops", "--database-url", db)
	if err != nil {
		t.Fatalf("token: %v\n%s", err, out)
	}
	token := strings.SplitN(out, "\n", 2)[0]
	call := apiCaller(t, ctx, "http://"+apiHTTP, token)
	call("PUT", "/v1/customers/c-ops", `{"email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Kari"}}`, http.StatusCreated)
	call("POST", "/v1/events", fmt.Sprintf(`{"id": "e-ops-1", "type": "order.placed", "customer_id": "c-ops", "at": %q,
		"data": {"order_id": "o-1", "total": 10.0}}`, time.Now().UTC().Format(time.RFC3339)), http.StatusAccepted)
	if _, err := catcher.WaitFor(ctx, 1); err != nil {
		t.Fatalf("the message never arrived: %v\n%s", err, logs.String())
	}
	// A workflow type no worker knows fails its workflow tasks: the
	// failure the dashboard's workflow task failures panel counts.
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ops-test-unknown-type", TaskQueue: workflows.TaskQueue}, "NoSuchWorkflow")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tc.TerminateWorkflow(context.Background(), run.GetID(), "", "test over") }()

	// The SDK's metrics, under its standard names, on both processes.
	worker := waitMetrics(t, ctx, "http://"+workerMetrics+"/metrics",
		`\ntemporal_workflow_task_schedule_to_start_latency_seconds_bucket\{`,
		// Decisions run as local activities in the workflow task (decide-local-v1).
		`\ntemporal_local_activity_total\{[^}]*activity_type="Decide"`,
		`\ntemporal_activity_schedule_to_start_latency_seconds_bucket\{[^}]*activity_type="Deliver"`,
		`\ntemporal_activity_execution_failed_total\{[^}]*activity_type="Deliver"`,
		`\ntemporal_workflow_task_execution_failed_total\{`,
		`\ntemporal_worker_task_slots_available\{`,
		`task_queue="lojal-journeys-email"`,
		`\nlojal_policy_decisions_total\{channel="email",decision="allow"`,
		`\nlojal_messages_total\{channel="email",status="sent"\} 1\n`)
	api := waitMetrics(t, ctx, "http://"+apiMetrics+"/metrics",
		`\ntemporal_request_total\{[^}]*namespace="default",operation="StartWorkflowExecution"`,
		`\nlojal_events_total\{status="accepted"\} 1\n`)

	// Every metric a dashboard panel or an alert rule reads exists.
	exported := slices.Concat(families(worker), families(api), metrics.New().Names())
	for file, exprs := range map[string][]string{"dashboard": dashboardExprs(t), "alert rules": ruleExprs(t)} {
		for _, expr := range exprs {
			for _, name := range metrics.NamesIn(expr) {
				if !slices.Contains(exported, name) {
					t.Errorf("the %s read %s, which neither lojal nor the Temporal SDK exports (in %s)", file, name, expr)
				}
			}
		}
	}

	// Workers poll every queue; the sweeper and the scheduler run.
	deadline := time.Now().Add(time.Minute)
	for {
		out, code = status()
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if code != 0 {
		t.Fatalf("status with workers running: exit %d\n%s", code, out)
	}
	for _, re := range []string{
		`live backlog +0 `, `dead letters +0`, `uncertain \(24 h\) +email 0, push 0`,
		`state +active, 1 running +last started \d`,
		`Retention \(schedule lojal-retention, every 6h0m0s\)\n +state +active, [01] running +last started \S+ ago \((running|completed)\), next in `,
		`monthly-hello +next \d{4}-\d\d-01T\d\d:00:00Z \(in \S+\), zones Europe/Oslo +no firing yet; scheduler running`,
		`lojal-journeys workflow +1 pollers`, `lojal-journeys activity +1 pollers`,
		`lojal-journeys-bulk workflow +1 pollers`, `lojal-journeys-bulk activity +1 pollers`,
		`lojal-journeys-email activity +1 pollers`, `lojal-journeys-push activity +1 pollers`, `\nhealthy\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks /%s/:\n%s", re, out)
		}
	}
	out, err = runCLI(t, append([]string{"status", "--json"}, common...)...)
	var js Status
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || len(js.Queues) != 6 || js.Sweeper == nil || len(js.Problems) != 0 {
		t.Errorf("status --json: %v\n%s", err, out)
	}

	// What needs a person, as Postgres records it: a dead letter, a live
	// event routing has not reached for ten minutes (its next attempt is
	// an hour away, so the sweeper leaves it), and the message the relay
	// took turned uncertain.
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`INSERT INTO events (id, type, customer_id, occurred_at, attempts, dead_at, dispatch_error)
		 VALUES ('e-ops-dead', 'order.placed', 'c-ops', now(), 10, now(), 'temporal: unavailable')`,
		`INSERT INTO events (id, type, customer_id, occurred_at, received_at, next_attempt_at)
		 VALUES ('e-ops-stuck', 'order.placed', 'c-ops', now(), now() - interval '10 minutes', now() + interval '1 hour')`,
		`UPDATE contact_ledger SET status = 'uncertain' WHERE customer_id = 'c-ops' AND status = 'sent'`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out, code = status()
	if code != 1 {
		t.Fatalf("status with a dead letter, a stuck event and an uncertain delivery: exit %d, want 1\n%s", code, out)
	}
	for _, re := range []string{
		`live backlog +1 +oldest waiting 10m\d+s`, `dead letters +1`, `uncertain \(24 h\) +email 1, push 0`, `\n3 problems:\n`,
		`the oldest live event has waited 10m\d+s to be routed: .*docs/operations\.md#lojalnodispatchprogress`,
		`1 dead-lettered events: .lojal events failed. .*docs/operations\.md#lojaldeadlettersgrowing`,
		`1 email deliveries uncertain in the last 24 hours: .*docs/operations\.md#lojaluncertaindeliveries`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks /%s/:\n%s", re, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered", url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitMetrics scrapes url until every want (a regular expression)
// matches it.
func waitMetrics(t *testing.T, ctx context.Context, url string, wants ...string) string {
	t.Helper()
	var body string
	missing := wants
	for {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			missing = slices.DeleteFunc(slices.Clone(wants), func(w string) bool { return regexp.MustCompile(w).MatchString(body) })
			if len(missing) == 0 {
				return body
			}
		}
		select {
		case <-ctx.Done():
			if body == "" {
				t.Fatalf("%s never answered", url)
			}
			t.Fatalf("%s lacks %q:\n%s", url, missing, body)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// families lists the metric families of a /metrics page.
func families(page string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/lojal.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	if len(out) < 10 {
		t.Fatalf("the dashboard has %d queries", len(out))
	}
	return out
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/prometheus/lojal-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Expr string } `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	if len(out) < 6 {
		t.Fatalf("the alert rules have %d expressions", len(out))
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// apiCaller returns a call of the API at base with token: it fails the
// test unless the answer's status is one of want.
func apiCaller(t *testing.T, ctx context.Context, base, token string) func(method, path, body string, want ...int) {
	return func(method, path, body string, want ...int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !slices.Contains(want, resp.StatusCode) {
			t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
		}
	}
}
