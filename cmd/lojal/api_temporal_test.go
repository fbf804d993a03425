package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

// TestAPIStartsAndAcceptsWhileTemporalIsAway: the API stores events and
// the sweeper routes them once Temporal answers, so an API that starts
// while Temporal is away (a restart during a Temporal outage, a rollout
// before Temporal is up) must serve. It used to exit ("connect to
// temporal"), and Kubernetes restarted it with a growing back-off, up to
// five minutes after Temporal was back: no event was accepted meanwhile.
// Away is nothing listening (connections refused) or a server that
// takes connections and never answers (a hung frontend, a network that
// drops packets).
func TestAPIStartsAndAcceptsWhileTemporalIsAway(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		acceptsWhileAway(t, freeAddr(t))
	})
	t.Run("hung", func(t *testing.T) {
		t.Parallel()
		// A listener that never accepts: the kernel completes the
		// handshake, and nothing ever answers.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		acceptsWhileAway(t, l.Addr().String())
	})
}

func acceptsWhileAway(t *testing.T, temporal string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	apiHTTP := freeAddr(t)
	logs := &syncBuffer{}
	procCtx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	go func() {
		exited <- run(procCtx, []string{"api", "--http-addr", apiHTTP, "--metrics-addr", "", "--database-url", db, "--temporal-address", temporal,
			"--journeys", "testdata/ops-journeys", "--public-url", "http://127.0.0.1:1", "--dev-mode", "--shutdown-timeout", "1s",
			"--link-key", "api-test-link-key-0123456789abcdef"}, logs, logs)
	}()
	t.Cleanup(func() {
		stop()
		<-exited
	})
	for ready := false; !ready; {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the API exited while Temporal was away: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("the API never became ready\n%s", logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + apiHTTP + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
	}
	out, err := runCLI(t, "api", "token", "create", "--name", "away", "--database-url", db)
	if err != nil {
		t.Fatalf("token: %v\n%s", err, out)
	}
	token := strings.SplitN(out, "\n", 2)[0]
	call := apiCaller(t, ctx, "http://"+apiHTTP, token)
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leftForTheSweeper := func(id string) {
		t.Helper()
		rec, err := st.Event(ctx, id)
		if err != nil {
			t.Fatalf("the accepted event %s was not stored: %v", id, err)
		}
		if rec.Status() == "routed" {
			t.Fatalf("the event %s is %s with Temporal away", id, rec.Status())
		}
	}

	call("PUT", "/v1/customers/c-away", `{"email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Kari"}}`, http.StatusCreated)
	began := time.Now()
	call("POST", "/v1/events", fmt.Sprintf(`{"id": "e-away-1", "type": "order.placed", "customer_id": "c-away", "at": %q,
		"data": {"order_id": "o-1", "total": 10.0}}`, time.Now().UTC().Format(time.RFC3339)), http.StatusAccepted)
	t.Logf("one event answered in %s", time.Since(began).Round(time.Millisecond))
	leftForTheSweeper("e-away-1")

	// A batch for many customers is answered once Temporal is seen away,
	// not after a wait for Temporal per group of customers: the client's
	// timeout would pass first, and its retry would route them again.
	var evs []string
	for i := range 64 {
		call("PUT", fmt.Sprintf("/v1/customers/c-away-%02d", i), `{"email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo",
			"consent": {"email": true}, "attributes": {"first_name": "Kari"}}`, http.StatusCreated)
		evs = append(evs, fmt.Sprintf(`{"id": "e-away-b%02d", "type": "order.placed", "customer_id": "c-away-%02d", "at": %q,
			"data": {"order_id": "o-1", "total": 10.0}}`, i, i, time.Now().UTC().Format(time.RFC3339)))
	}
	began = time.Now()
	call("POST", "/v1/events/batch", `{"events": [`+strings.Join(evs, ",")+`]}`, http.StatusOK, http.StatusAccepted)
	took := time.Since(began)
	t.Logf("a batch of 64 customers' events answered in %s", took.Round(time.Millisecond))
	if took > 8*time.Second {
		t.Errorf("a batch of 64 customers' events took %s with Temporal away, want about one wait for it", took.Round(time.Millisecond))
	}
	for i := range 64 {
		leftForTheSweeper(fmt.Sprintf("e-away-b%02d", i))
	}
}

// TestWorkerWaitsForTemporal: a worker that starts while Temporal is away
// (a restart during a Temporal outage, a rollout that brings workers up
// before Temporal) must come up when Temporal does. It used to exit
// ("connect to temporal"), and Kubernetes restarted it with a growing
// back-off, up to five minutes after Temporal was back: no journey moved
// meanwhile. Waiting, it answers /healthz (Kubernetes must not kill it)
// and says on /readyz what it waits for.
func TestWorkerWaitsForTemporal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	temporal := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	workerHTTP := freeAddr(t)
	logs := &syncBuffer{}
	procCtx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	began := time.Now()
	go func() {
		exited <- run(procCtx, []string{"worker", "--smtp-url", "smtp://127.0.0.1:1", "--http-addr", workerHTTP, "--metrics-addr", "",
			"--database-url", db, "--temporal-address", temporal, "--journeys", "testdata/ops-journeys",
			"--public-url", "http://127.0.0.1:1", "--dev-mode", "--shutdown-timeout", "1s",
			"--link-key", "worker-test-link-key-0123456789abcdef"}, logs, logs)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-exited; err != nil {
			t.Errorf("the worker's shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs.String())
		}
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + workerHTTP + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Alive, and not ready, for as long as Temporal is away.
	for time.Since(began) < 4*time.Second {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the worker exited while Temporal was away: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while Temporal is away: %d %s, want 200", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "temporal") {
		t.Fatalf("/readyz while Temporal is away: %d %s, want 503 naming Temporal", code, body)
	}

	srv, err := devstack.StartTemporal(ctx, slog.New(slog.DiscardHandler), devstack.TemporalOptions{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	up := time.Now()
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the worker exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(up) > 20*time.Second {
			t.Fatalf("the worker was not ready 20s after Temporal was")
		}
	}
	t.Logf("ready %s after Temporal was", time.Since(up).Round(time.Millisecond))
	tc, err := client.Dial(client.Options{HostPort: temporal, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	// A poller is seen once its first poll reaches the server.
	for polled := time.Now(); ; {
		desc, err := tc.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.GetPollers()) > 0 {
			break
		}
		if time.Since(polled) > 10*time.Second {
			t.Fatalf("ready, and nothing polled %s within 10s", workflows.TaskQueue)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
