//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

var lojalBin string

func TestMain(m *testing.M) {
	dir, err := devstack.TempDir("lojal-faults-")
	if err != nil {
		panic(err)
	}
	lojalBin = filepath.Join(dir, "lojal")
	if out, err := exec.Command("go", "build", "-o", lojalBin, "../../cmd/lojal").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lojal: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// os.Exit skips deferred calls: remove the directory before it.
	code := stacktest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

const journeysDir = "testdata/journeys"

// tally counts what the SMTP server received, per expected message key.
type tally struct {
	expected, received, unique, duplicates, lost int
}

func (t tally) String() string {
	return fmt.Sprintf("messages expected %d, received %d (%d distinct), duplicates %d, lost %d",
		t.expected, t.received, t.unique, t.duplicates, t.lost)
}

// count matches received messages to expected recipients: one message per
// customer unless said otherwise.
func count(msgs []mailcatch.Message, expected map[string]int) tally {
	got := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			got[to]++
		}
	}
	t := tally{received: len(msgs), unique: len(got)}
	for addr, want := range expected {
		t.expected += want
		switch n := got[addr]; {
		case n > want:
			t.duplicates += n - want
		case n < want:
			t.lost += want - n
		}
	}
	return t
}

func customers(t *testing.T, d *ingest.Dispatcher, prefix string, n int) map[string]int {
	t.Helper()
	ctx := context.Background()
	want := map[string]int{}
	for i := range n {
		c := journey.Customer{ID: fmt.Sprintf("%s-%04d", prefix, i), Email: fmt.Sprintf("%s-%04d@example.no", prefix, i), Locale: "en",
			Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := d.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
		want[c.Email] = 1
	}
	return want
}

func waitRuns(t *testing.T, tc client.Client, ids []string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, 32)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := tc.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// workerProcess runs `lojal worker` as a separate process so it can be
// killed with SIGKILL.
type workerProcess struct {
	// bin and args default to lojalBin worker.
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
}

func (w *workerProcess) start(t *testing.T) {
	t.Helper()
	if err := w.startProcess(); err != nil {
		t.Fatal(err)
	}
}

func (w *workerProcess) startProcess() error {
	bin, args := w.bin, w.args
	if bin == "" {
		bin = lojalBin
	}
	if len(args) == 0 {
		args = []string{"worker"}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Stdout, cmd.Stderr = w.log, w.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.cmd = cmd
	return nil
}

func (w *workerProcess) kill() {
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		w.cmd = nil
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestFaultWorkerKill: 500 journeys while the worker is killed with SIGKILL
// at random moments and restarted. Every journey completes and every
// customer receives their message exactly once.
func TestFaultWorkerKill(t *testing.T) {
	const n = 500
	cfg := pgtest.Config(t)
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	catcher, err := mailcatch.Start(log, mailcatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer catcher.Close()
	addr := stacktest.TemporalAddress(t)
	tc, err := client.Dial(client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	cat, err := catalog.Load(os.DirFS(journeysDir), journeysDir)
	if err != nil {
		t.Fatal(err)
	}
	d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log}
	want := customers(t, d, "kill", n)
	abs, _ := filepath.Abs(journeysDir)
	logFile, _ := os.CreateTemp("", "lojal-worker-*.log")
	defer os.Remove(logFile.Name())
	w := &workerProcess{log: logFile, env: []string{
		"DATABASE_URL=" + cfg.URL + "&search_path=" + cfg.Schema, "TEMPORAL_ADDRESS=" + addr, "SMTP_URL=smtp://" + catcher.Addr,
		"LOJAL_JOURNEYS=" + abs, "LOJAL_LINK_KEY=fault-tests-link-key-0123456789abcdef", "LOJAL_HTTP_ADDR=" + freeAddr(t),
		"LOJAL_LOG_LEVEL=warn", "LOJAL_SHUTDOWN_TIMEOUT=1s", "LOJAL_METRICS_ADDR=", "LOJAL_DEV_MODE=true"}}
	w.start(t)
	defer w.kill()

	stop := make(chan struct{})
	kills := 0
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(800+rng.IntN(2500)) * time.Millisecond):
			}
			w.kill()
			kills++
			time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
			w.start(t)
		}
	}()
	ids := make([]string, 0, n)
	start := time.Now()
	for i := range n {
		cid := fmt.Sprintf("kill-%04d", i)
		e := journey.Event{ID: "e-" + cid, Type: "order.placed", CustomerID: cid, At: time.Now(), Data: map[string]any{"order_id": "o-" + cid}}
		if _, err := d.Event(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("receipt", cid, "o-"+cid))
		time.Sleep(30 * time.Millisecond) // spread the journeys over the kills
	}
	time.Sleep(3 * time.Second)
	close(stop)
	killer.Wait()
	waitRuns(t, tc, ids, 5*time.Minute)
	time.Sleep(time.Second)
	tl := count(catcher.Messages(), want)
	t.Logf("worker kill -9: %d journeys run, worker killed %d times, all done in %s; %s", n, kills, time.Since(start).Round(time.Second), tl)
	fmt.Printf("FAULT worker-kill: journeys %d, kills %d, %s\n", n, kills, tl)
	if tl.duplicates > 0 || tl.lost > 0 {
		b, _ := os.ReadFile(logFile.Name())
		t.Fatalf("%s\nledger of the customers concerned:\n%s\nworker log tail:\n%s", tl, ledgerOf(st, tc, catcher.Messages(), want), tail(string(b), 3000))
	}
}

// ledgerOf describes the ledger rows of customers who got other than what
// they should: what lojal knew of the message that went missing or twice.
func ledgerOf(st *store.Store, tc client.Client, msgs []mailcatch.Message, want map[string]int) string {
	got := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			got[to]++
		}
	}
	var b strings.Builder
	for addr, n := range want {
		if got[addr] == n {
			continue
		}
		cid, _, _ := strings.Cut(addr, "@")
		hist, err := st.History(context.Background(), cid)
		fmt.Fprintf(&b, "  %s (received %d, want %d): %v\n", cid, got[addr], n, err)
		var res workflows.JourneyResult
		rerr := tc.GetWorkflow(context.Background(), workflows.WorkflowID("receipt", cid, "o-"+cid), "").Get(context.Background(), &res)
		fmt.Fprintf(&b, "    run: %+v %v\n", res, rerr)
		iter := tc.GetWorkflowHistory(context.Background(), workflows.WorkflowID("receipt", cid, "o-"+cid), "", false, 0)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				break
			}
			fmt.Fprintf(&b, "      %d %s %s\n", ev.GetEventId(), ev.GetEventType(), tail(fmt.Sprint(ev.GetActivityTaskCompletedEventAttributes().GetResult()), 300))
		}
		for _, h := range hist {
			fmt.Fprintf(&b, "    %s %s/%s %s %s: %s\n", h.DecidedAt.Format("15:04:05.000"), h.JourneyID, h.StepID, h.Decision, h.Status, h.Error)
		}
	}
	return b.String()
}

// stack is an in-process worker on a Postgres of its own, for the tests
// that restart Postgres or break SMTP.
type stack struct {
	pg      *devstack.Postgres
	st      *store.Store
	tc      client.Client
	catcher *mailcatch.Server
	d       *ingest.Dispatcher
	w       workflows.Workers
	queue   string
}

func newStack(t *testing.T, ownPostgres bool) *stack {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s := &stack{queue: fmt.Sprintf("faults-%d", time.Now().UnixNano())}
	cfg := pgtest.Config(t)
	if ownPostgres {
		pg, err := devstack.StartPostgres(ctx, log, devstack.PostgresOptions{Durable: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Stop)
		s.pg = pg
		cfg = store.Config{URL: pg.URL}
		if _, err := store.Migrate(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if s.st, err = store.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.st.Close)
	if s.catcher, err = mailcatch.Start(log, mailcatch.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.catcher.Close() })
	// Activity failures are the point of these tests; the SDK's error logs
	// about them are noise.
	if s.tc, err = client.Dial(client.Options{HostPort: stacktest.TemporalAddress(t), Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tc.Close)
	cat, err := catalog.Load(os.DirFS(journeysDir), journeysDir)
	if err != nil {
		t.Fatal(err)
	}
	email, err := channel.NewEmail(channel.EmailConfig{URL: "smtp://" + s.catcher.Addr, From: "lojal <hello@lojal.test>", Timeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(email.Close)
	signer, _ := links.NewSigner([]byte("fault-tests-link-key-0123456789abcdef"), "http://lojal.test", 0)
	s.w = workflows.NewWorkers(s.tc, s.queue, &activities.Activities{Store: s.st, Catalog: cat, Sender: channel.Mux{"email": email},
		Links: signer, Log: log, MessageDomain: "lojal.test"}, workflows.WorkerOptions{})
	if err := s.w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.w.Stop)
	s.d = &ingest.Dispatcher{Store: s.st, Temporal: s.tc, Catalog: cat, Log: log, TaskQueue: s.queue, ReorderWindow: time.Second}
	return s
}

// TestFaultPostgresRestart: Postgres is killed and restarted twice while
// 200 delayed receipts go out. No ledger row is lost and no message is
// sent twice.
func TestFaultPostgresRestart(t *testing.T) {
	const n = 200
	s := newStack(t, true)
	want := customers(t, s.d, "pg", n)
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("pg-%04d", i)
		e := journey.Event{ID: "e-" + cid, Type: "order.paid", CustomerID: cid, At: time.Now(), Data: map[string]any{"order_id": "o-" + cid}}
		if _, err := s.d.Event(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("delayed-receipt", cid, "o-"+cid))
		time.Sleep(20 * time.Millisecond)
	}
	// The receipts go out 3 seconds after payment, over the next 4
	// seconds: restart Postgres in the middle, twice.
	restarts := 0
	for _, at := range []time.Duration{500 * time.Millisecond, 2500 * time.Millisecond} {
		time.Sleep(at)
		s.pg.Kill()
		time.Sleep(time.Second)
		if err := s.pg.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		restarts++
	}
	waitRuns(t, s.tc, ids, 4*time.Minute)
	time.Sleep(time.Second)
	tl := count(s.catcher.Messages(), want)
	rows, sent, others := 0, 0, map[string]int{}
	for i := range n {
		hist, err := s.st.History(context.Background(), fmt.Sprintf("pg-%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		rows += len(hist)
		for _, h := range hist {
			if h.Status == "sent" {
				sent++
			} else {
				others[h.Status]++
			}
		}
	}
	t.Logf("postgres restart: %d journeys, %d restarts; %s; ledger rows %d, sent %d, others %v", n, restarts, tl, rows, sent, others)
	fmt.Printf("FAULT postgres-restart: journeys %d, restarts %d, %s, ledger sent %d\n", n, restarts, tl, sent)
	if tl.duplicates > 0 || tl.lost > 0 || sent != n {
		t.Fatalf("%s; ledger says %d sent (others %v), want %d", tl, sent, others, n)
	}
}

// TestFaultSMTPOutage: the SMTP server refuses connections for 30 seconds
// and drops them for 30 more. The messages are retried and each delivered
// once after it returns.
func TestFaultSMTPOutage(t *testing.T) {
	const n = 100
	s := newStack(t, false)
	want := customers(t, s.d, "smtp", n)
	s.catcher.SetMode(mailcatch.TempFail)
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("smtp-%04d", i)
		e := journey.Event{ID: "e-" + cid, Type: "order.placed", CustomerID: cid, At: time.Now(), Data: map[string]any{"order_id": "o-" + cid}}
		if _, err := s.d.Event(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("receipt", cid, "o-"+cid))
	}
	time.Sleep(30 * time.Second)
	if n := s.catcher.Count(); n != 0 {
		t.Fatalf("%d delivered while refusing", n)
	}
	s.catcher.SetMode(mailcatch.Drop)
	time.Sleep(30 * time.Second)
	s.catcher.SetMode(mailcatch.Accept)
	back := time.Now()
	waitRuns(t, s.tc, ids, 4*time.Minute)
	time.Sleep(time.Second)
	tl := count(s.catcher.Messages(), want)
	stale := 0
	for i := range n {
		hist, _ := s.st.History(context.Background(), fmt.Sprintf("smtp-%04d", i))
		for _, h := range hist {
			if h.Reason == "stale" {
				stale++
			}
		}
	}
	t.Logf("smtp outage 60s: %d journeys; %s; stale %d; all delivered %s after the server returned", n, tl, stale, time.Since(back).Round(time.Second))
	fmt.Printf("FAULT smtp-outage: journeys %d, %s, dropped as stale %d\n", n, tl, stale)
	if tl.duplicates > 0 || tl.lost-stale > 0 {
		t.Fatal(tl)
	}
}

// TestFaultDuplicateAndOutOfOrder: every event arrives three times, and
// the delivery before the booking. The dispatcher's reorder window puts
// them back in the order they happened: each parcel journey starts once,
// advances past its wait_for once, and sends two messages.
func TestFaultDuplicateAndOutOfOrder(t *testing.T) {
	const n = 50
	s := newStack(t, false)
	want := customers(t, s.d, "ooo", n)
	for k := range want {
		want[k] = 2
	}
	ctx := context.Background()
	now := time.Now()
	var all []journey.Event
	for i := range n {
		cid := fmt.Sprintf("ooo-%04d", i)
		booked := journey.Event{ID: "b-" + cid, Type: "parcel.booked", CustomerID: cid, At: now, Data: map[string]any{"parcel_id": "p-" + cid}}
		delivered := journey.Event{ID: "d-" + cid, Type: "parcel.delivered", CustomerID: cid, At: now.Add(time.Second), Data: map[string]any{"parcel_id": "p-" + cid}}
		all = append(all, delivered, booked, delivered, booked, delivered, booked)
	}
	res, err := s.d.Accept(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, r := range res {
		if r.Status == "accepted" {
			accepted++
		}
	}
	// Routed in the request path: each delivery arrived before its
	// booking and waited, parked, for the run the booking started.
	if left, err := s.d.Sweep(ctx); err != nil || left != 0 {
		t.Fatalf("the sweeper found %d events still to route (%v)", left, err)
	}
	dispatched := 0
	for i := range n {
		for _, id := range []string{"b-", "d-"} {
			rec, err := s.st.Event(ctx, fmt.Sprintf("%sooo-%04d", id, i))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status() == "routed" {
				dispatched++
			}
		}
	}
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("ooo-%04d", i)
		ids = append(ids, workflows.WorkflowID("parcel", cid, "p-"+cid))
	}
	waitRuns(t, s.tc, ids, 2*time.Minute)
	time.Sleep(time.Second)
	tl := count(s.catcher.Messages(), want)
	t.Logf("duplicates and out of order: %d events delivered, %d accepted, %d dispatched; %s", len(all), accepted, dispatched, tl)
	fmt.Printf("FAULT duplicate-out-of-order: events %d, accepted %d, %s\n", len(all), accepted, tl)
	if accepted != 2*n || dispatched != 2*n || tl.duplicates > 0 || tl.lost > 0 {
		t.Fatalf("accepted %d, dispatched %d, %s", accepted, dispatched, tl)
	}
}

// TestFaultEditWhileInFlight: 200 customers are mid-journey when the
// journey's YAML is edited and deployed. Every one of them finishes on the
// version it started with; new entrants get the new one; the histories of
// the old runs replay against the current code.
func TestFaultEditWhileInFlight(t *testing.T) {
	const n = 200
	s := newStack(t, false)
	customers(t, s.d, "edit", n)
	ctx := context.Background()
	v1, _ := s.d.Catalog.Current().Journey("parcel")
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("edit-%04d", i)
		e := journey.Event{ID: "b-" + cid, Type: "parcel.booked", CustomerID: cid, At: time.Now(), Data: map[string]any{"parcel_id": "p-" + cid}}
		if _, err := s.d.Event(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("parcel", cid, "p-"+cid))
	}
	// Edit: rename the waiting step, change the timeout, drop a step.
	src := strings.Replace(string(v1.Source), "id: wait-for-delivery", "id: await-delivery", 1)
	src = strings.Replace(src, "timeout: 30d", "timeout: 10d", 1)
	v2j, errs := journey.Parse("parcel.yaml", []byte(src), v1.Schema, v1.Location)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	edited := &editedCatalog{base: s.d.Catalog.Current(), j: v2j}
	s.d.Catalog = edited
	// Deliveries for everyone: the old runs wait at a step the new version
	// does not have, and must finish on theirs.
	for i := range n {
		cid := fmt.Sprintf("edit-%04d", i)
		e := journey.Event{ID: "d-" + cid, Type: "parcel.delivered", CustomerID: cid, At: time.Now(), Data: map[string]any{"parcel_id": "p-" + cid}}
		if _, err := s.d.Event(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	waitRuns(t, s.tc, ids, 2*time.Minute)
	onV1 := 0
	for _, id := range ids {
		var res workflows.JourneyResult
		if err := s.tc.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		if res.Sent == 2 && res.Outcome == journey.OutcomeCompleted {
			onV1++
		}
	}
	// A new entrant gets version 2.
	customers(t, s.d, "edit-new", 1)
	e := journey.Event{ID: "b-new", Type: "parcel.booked", CustomerID: "edit-new-0000", At: time.Now(), Data: map[string]any{"parcel_id": "p-new"}}
	if _, err := s.d.Event(ctx, e); err != nil {
		t.Fatal(err)
	}
	newID := workflows.WorkflowID("parcel", "edit-new-0000", "p-new")
	var info workflows.RunInfo
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if v, err := s.tc.QueryWorkflow(ctx, newID, "", workflows.QueryState); err == nil && v.Get(&info) == nil && info.State.Current.Step == "await-delivery" {
			break
		}
	}
	// Replay a sample of the old histories against today's code.
	replayed := 0
	for _, id := range ids[:20] {
		r := worker.NewWorkflowReplayer()
		w := workflows.New()
		r.RegisterWorkflowWithOptions(w.Journey, workflow.RegisterOptions{Name: workflows.JourneyWorkflow})
		if err := r.ReplayWorkflowExecution(ctx, s.tc.WorkflowService(), nil, "default", workflowExecution(id)); err != nil {
			t.Errorf("replay %s: %v", id, err)
			continue
		}
		replayed++
	}
	t.Logf("edit while in flight: %d runs finished on version %s; new entrant on %s (%s); %d histories replayed", onV1, v1.Version, info.Version, info.State.Current.Step, replayed)
	fmt.Printf("FAULT edit-in-flight: runs %d, finished on original version %d, new entrant version %s, replayed %d\n", n, onV1, info.Version, replayed)
	if onV1 != n || info.Version != v2j.Version || replayed != 20 {
		t.Fatalf("%d of %d finished on v1; new entrant on %q (want %s)", onV1, n, info.Version, v2j.Version)
	}
}

type editedCatalog struct {
	base *catalog.Catalog
	j    *journey.Journey
	once sync.Once
	c    *catalog.Catalog
}

func (e *editedCatalog) Current() *catalog.Catalog {
	e.once.Do(func() {
		var js []*journey.Journey
		for _, j := range e.base.Journeys {
			if j.ID == e.j.ID {
				j = e.j
			}
			js = append(js, j)
		}
		e.c = e.base.WithJourneys(js)
	})
	return e.c
}

func workflowExecution(id string) workflow.Execution { return workflow.Execution{ID: id} }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// servers are a fault test's own: a Temporal dev server it may stop and
// restart (the cleanup stops whichever temporal holds then), a client of
// it, a Postgres schema and an SMTP catcher.
type servers struct {
	temporal *devstack.Temporal
	tc       client.Client
	cfg      store.Config
	st       *store.Store
	catcher  *mailcatch.Server
}

func ownServers(t *testing.T, log *slog.Logger, opts devstack.TemporalOptions) *servers {
	t.Helper()
	ctx := context.Background()
	s := &servers{}
	var err error
	if s.temporal, err = devstack.StartTemporal(ctx, log, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.temporal.Stop() })
	if s.tc, err = client.Dial(client.Options{HostPort: s.temporal.Address, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.tc.Close)
	s.cfg = pgtest.Config(t)
	if s.st, err = store.Open(ctx, s.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.st.Close)
	if s.catcher, err = mailcatch.Start(log, mailcatch.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.catcher.Close() })
	return s
}
