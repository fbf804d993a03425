//go:build faults

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// The faults real mail servers and clusters produce at the moment a
// message is handed over. Each test prints a FAULT line with duplicates and
// lost messages; an uncertain message counts as delivered once, and each
// test checks the server really has it.

// ledgerStatuses counts the ledger's final statuses for customers
// prefix-0000 ... prefix-(n-1).
func ledgerStatuses(t *testing.T, st *store.Store, prefix string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := range n {
		hist, err := st.History(context.Background(), fmt.Sprintf("%s-%04d", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hist {
			out[h.Status]++
		}
	}
	return out
}

// receipts starts one receipt journey per customer and returns the runs.
func receipts(t *testing.T, d *ingest.Dispatcher, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("%s-%04d", prefix, i)
		e := journey.Event{ID: "e-" + cid, Type: "order.placed", CustomerID: cid, At: time.Now(), Data: map[string]any{"order_id": "o-" + cid}}
		if _, err := d.Event(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("receipt", cid, "o-"+cid))
	}
	return ids
}

// TestFaultLostReply: an SMTP server that queues each message on the final
// "." and drops the connection before its 250, the first time it sees the
// message. The message is on the server; lojal records it as uncertain and
// never sends it again.
func TestFaultLostReply(t *testing.T) {
	const n = 100
	s := newStack(t, false)
	want := customers(t, s.d, "lost", n)
	s.catcher.SetAfterData(func(_ mailcatch.Message, attempt int) mailcatch.Reply {
		if attempt == 1 {
			return mailcatch.Reply{Action: mailcatch.QueueAndDrop}
		}
		return mailcatch.Reply{}
	})
	ids := receipts(t, s.d, "lost", n)
	waitRuns(t, s.tc, ids, 3*time.Minute)
	time.Sleep(time.Second)
	tl := count(s.catcher.Messages(), want)
	st := ledgerStatuses(t, s.st, "lost", n)
	t.Logf("lost reply: %d messages; %s; ledger %v", n, tl, st)
	fmt.Printf("FAULT lost-reply: messages %d, %s, ledger uncertain %d, sent %d\n", n, tl, st["uncertain"], st["sent"])
	if tl.duplicates > 0 || tl.lost > 0 || st["uncertain"]+st["sent"] != n {
		t.Fatalf("%s; ledger %v", tl, st)
	}
}

// TestFaultSlowAcceptance: the server takes 30 s after the final "."
// before it answers, longer than lojal waits. The server has each message;
// lojal must not send it again.
func TestFaultSlowAcceptance(t *testing.T) {
	const n = 40
	s := newStack(t, false) // its SMTP timeout is 5 s
	want := customers(t, s.d, "slow", n)
	s.catcher.SetAfterData(func(mailcatch.Message, int) mailcatch.Reply {
		return mailcatch.Reply{Action: mailcatch.QueueAndDelay, Delay: 30 * time.Second}
	})
	ids := receipts(t, s.d, "slow", n)
	waitRuns(t, s.tc, ids, 3*time.Minute)
	time.Sleep(time.Second)
	tl := count(s.catcher.Messages(), want)
	st := ledgerStatuses(t, s.st, "slow", n)
	t.Logf("slow acceptance: %d messages; %s; ledger %v", n, tl, st)
	fmt.Printf("FAULT slow-acceptance: messages %d, %s, ledger uncertain %d, sent %d\n", n, tl, st["uncertain"], st["sent"])
	if tl.duplicates > 0 || tl.lost > 0 || st["uncertain"]+st["sent"] != n {
		t.Fatalf("%s; ledger %v", tl, st)
	}
}

// processStack runs `lojal worker` as a separate process (so it can be
// stopped and killed) against a schema of its own and the shared Temporal
// dev server.
type processStack struct {
	st      *store.Store
	tc      client.Client
	catcher *mailcatch.Server
	d       *ingest.Dispatcher
	w       *workerProcess
}

func newProcessStack(t *testing.T, extraEnv ...string) *processStack {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := pgtest.Config(t)
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	catcher, err := mailcatch.Start(log, mailcatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { catcher.Close() })
	addr := stacktest.TemporalAddress(t)
	tc, err := client.Dial(client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	cat, err := catalog.Load(os.DirFS(journeysDir), journeysDir)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(journeysDir)
	logFile, err := os.CreateTemp("", "lojal-worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(logFile.Name()) })
	w := &workerProcess{log: logFile, env: append([]string{
		"DATABASE_URL=" + cfg.URL + "&search_path=" + cfg.Schema, "TEMPORAL_ADDRESS=" + addr, "SMTP_URL=smtp://" + catcher.Addr,
		"LOJAL_JOURNEYS=" + abs, "LOJAL_LINK_KEY=fault-tests-link-key-0123456789abcdef", "LOJAL_HTTP_ADDR=" + freeAddr(t),
		"LOJAL_LOG_LEVEL=warn", "LOJAL_SHUTDOWN_TIMEOUT=1s", "LOJAL_METRICS_ADDR=", "LOJAL_DEV_MODE=true"}, extraEnv...)}
	w.start(t)
	t.Cleanup(w.kill)
	return &processStack{st: st, tc: tc, catcher: catcher, w: w,
		d: &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log}}
}

func (w *workerProcess) signal(sig syscall.Signal) {
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(sig)
	}
}

// TestFaultLateTimeout: the worker is stopped (SIGSTOP) right after the
// server took the first message, and resumed after the Send activity's
// timeout. The run asks the policy again; the new ask is the same message
// and sends nothing new.
func TestFaultLateTimeout(t *testing.T) {
	const n = 20
	const sendTimeout = 10 * time.Second
	s := newProcessStack(t, fmt.Sprintf("LOJAL_SEND_TIMEOUT=%s", sendTimeout))
	want := customers(t, s.d, "late", n)
	var once sync.Once
	stopped := make(chan struct{})
	s.catcher.SetAfterData(func(mailcatch.Message, int) mailcatch.Reply {
		once.Do(func() {
			s.w.signal(syscall.SIGSTOP) // the 250 reaches a stopped worker
			close(stopped)
		})
		return mailcatch.Reply{}
	})
	ids := receipts(t, s.d, "late", n)
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("no message reached the server")
	}
	time.Sleep(sendTimeout + 10*time.Second)
	s.w.signal(syscall.SIGCONT)
	waitRuns(t, s.tc, ids, 3*time.Minute)
	time.Sleep(2 * time.Second)
	tl := count(s.catcher.Messages(), want)
	st := ledgerStatuses(t, s.st, "late", n)
	t.Logf("late timeout: %d messages, worker stopped for %s; %s; ledger %v", n, sendTimeout+10*time.Second, tl, st)
	fmt.Printf("FAULT late-timeout: messages %d, %s, ledger sent %d, uncertain %d\n", n, tl, st["sent"], st["uncertain"])
	if tl.duplicates > 0 || tl.lost > 0 {
		b, _ := os.ReadFile(s.w.log.Name())
		t.Fatalf("%s; ledger %v\nworker log tail:\n%s", tl, st, tail(string(b), 3000))
	}
}

// pushService is an HTTP push provider on loopback that counts what each
// device was given, and kills the worker right after it accepted the
// first request of the first few messages.
type pushService struct {
	mu        sync.Mutex
	delivered map[string]int
	kills     int
	maxKills  int
	kill      func()
}

func (p *pushService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		To string `json:"to"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.delivered[req.To]++
	first := p.delivered[req.To] == 1 && p.kills < p.maxKills
	if first {
		p.kills++
	}
	p.mu.Unlock()
	if first {
		p.kill() // accepted, and the worker dies before it hears so
	}
	w.WriteHeader(http.StatusCreated)
}

// TestFaultPushCrash: the worker is killed (SIGKILL) right after the push
// provider accepted a message. The restarted worker finds the request
// recorded as under way, records the message as uncertain, and does not
// push it again.
func TestFaultPushCrash(t *testing.T) {
	const n = 20
	svc := &pushService{delivered: map[string]int{}, maxKills: 3}
	provider := httptest.NewServer(svc)
	t.Cleanup(provider.Close)
	s := newProcessStack(t, "LOJAL_PUSH_PROVIDER_URL="+provider.URL)
	var restarts sync.Mutex // one kill and restart at a time
	svc.kill = func() {
		restarts.Lock()
		s.w.kill()
		go func() {
			defer restarts.Unlock()
			time.Sleep(500 * time.Millisecond)
			if err := s.w.startProcess(); err != nil {
				t.Error(err)
			}
		}()
	}
	ctx := context.Background()
	ids := make([]string, 0, n)
	for i := range n {
		cid := fmt.Sprintf("push-%04d", i)
		c := journey.Customer{ID: cid, Email: cid + "@example.no", Locale: "en", Timezone: "Europe/Oslo",
			Consent: map[string]bool{"push": true}, Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := s.d.Customer(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.st.AddPushSubscription(ctx, cid, store.PushSubscription{Kind: "http", Endpoint: "device-" + cid}); err != nil {
			t.Fatal(err)
		}
		e := journey.Event{ID: "s-" + cid, Type: "order.shipped", CustomerID: cid, At: time.Now(), Data: map[string]any{"order_id": "o-" + cid}}
		if _, err := s.d.Event(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, workflows.WorkflowID("shipped", cid, "o-"+cid))
	}
	waitRuns(t, s.tc, ids, 5*time.Minute)
	time.Sleep(time.Second)
	svc.mu.Lock()
	var dups, lost int
	for i := range n {
		switch got := svc.delivered[fmt.Sprintf("device-push-%04d", i)]; {
		case got > 1:
			dups += got - 1
		case got == 0:
			lost++
		}
	}
	kills := svc.kills
	svc.mu.Unlock()
	st := ledgerStatuses(t, s.st, "push", n)
	t.Logf("push crash: %d messages, worker killed %d times after the provider accepted; duplicates %d, lost %d; ledger %v", n, kills, dups, lost, st)
	fmt.Printf("FAULT push-crash: messages %d, kills %d, duplicates %d, lost %d, ledger uncertain %d, sent %d\n", n, kills, dups, lost, st["uncertain"], st["sent"])
	if kills == 0 || dups > 0 || lost > 0 || st["uncertain"] < kills {
		b, _ := os.ReadFile(s.w.log.Name())
		t.Fatalf("kills %d, duplicates %d, lost %d; ledger %v\nworker log tail:\n%s", kills, dups, lost, st, tail(string(b), 3000))
	}
}
