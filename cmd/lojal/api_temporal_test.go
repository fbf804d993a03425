package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestAPIStartsAndAcceptsWhileTemporalIsAway: the API stores events and
// the sweeper routes them once Temporal answers, so an API that starts
// while Temporal is away (a restart during a Temporal outage, a rollout
// before Temporal is up) must serve. It used to exit ("connect to
// temporal"), and Kubernetes restarted it with a growing back-off, up to
// five minutes after Temporal was back: no event was accepted meanwhile.
func TestAPIStartsAndAcceptsWhileTemporalIsAway(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := pgtest.Config(t)
	db := cfg.URL + "&search_path=" + cfg.Schema
	away := freeAddr(t) // nothing listens there
	apiHTTP := freeAddr(t)
	logs := &syncBuffer{}
	procCtx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	go func() {
		exited <- run(procCtx, []string{"api", "--http-addr", apiHTTP, "--metrics-addr", "", "--database-url", db, "--temporal-address", away,
			"--journeys", "testdata/ops-journeys", "--public-url", "http://127.0.0.1:1", "--dev-mode",
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
	call := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+apiHTTP+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
		}
	}
	call("PUT", "/v1/customers/c-away", `{"email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo", "consent": {"email": true},
		"attributes": {"first_name": "Kari"}}`, http.StatusCreated)
	began := time.Now()
	call("POST", "/v1/events", fmt.Sprintf(`{"id": "e-away-1", "type": "order.placed", "customer_id": "c-away", "at": %q,
		"data": {"order_id": "o-1", "total": 10.0}}`, time.Now().UTC().Format(time.RFC3339)), http.StatusAccepted)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("accepting the event took %s while Temporal was away", took.Round(time.Millisecond))
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Event(ctx, "e-away-1")
	if err != nil {
		t.Fatalf("the accepted event was not stored: %v", err)
	}
	if rec.Status() == "routed" {
		t.Fatalf("the event is %s with Temporal away", rec.Status())
	}
}
