package api_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/pgtest"
)

// lightSetup is the API over a real Postgres, without Temporal (events are
// stored for the sweeper), so a fuzz worker starts in seconds.
func lightSetup(tb testing.TB) *fixture {
	tb.Helper()
	cat, err := catalog.Load(os.DirFS("../../journeys"), "journeys")
	if err != nil {
		tb.Fatal(err)
	}
	st := pgtest.Store(tb)
	signer, _ := links.NewSigner([]byte("test-link-key-0123456789abcdef0123"), "http://lojal.test", 0)
	f := &fixture{token: "lj_fuzz-token"}
	if _, err := st.CreateToken(context.Background(), "fuzz", f.token); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := &api.Server{Store: st, Dispatcher: &ingest.Dispatcher{Store: st, Catalog: cat, Log: log},
		Catalog: cat, Links: signer, Log: log, Bounces: &bounce.Intake{Store: st, Log: log}, PushEgress: &channel.Egress{Resolver: stubDNS}}
	f.srv = httptest.NewServer(srv.Handler())
	tb.Cleanup(f.srv.Close)
	return f
}

// FuzzAPI sends any body to every route that takes one. Whatever it is,
// the answer is never a server error, an error is always a problem
// document, and a forged token never gets through.
func FuzzAPI(f *testing.F) {
	fx := lightSetup(f)
	fx.do(f, "PUT", "/v1/customers/c-1", kari)
	routes := []struct{ method, path string }{
		{"POST", "/v1/events"}, {"POST", "/v1/events/batch"}, {"PUT", "/v1/customers/c-1"}, {"PUT", "/v1/customers/c-1/consent/email"},
		{"POST", "/v1/customers/c-1/push-subscriptions"}, {"POST", "/v1/bounces"}, {"DELETE", "/v1/suppressions/email/kari@example.no"},
	}
	for _, seed := range []string{kari, `{"id":`, `{"id": 1}`, `[]`, `null`, `{"events": [{}]}`, `{"events": [1, "x", null]}`,
		event("e-1", "order.placed", "c-1", `{"order_id": "o", "total": 1}`),
		event("e-1", "order.placed", "c-1", `{"order_id": "o", "total": 2}`),
		event("e-2", "order.placed", "c-1", `{"order_id": "o\u0000", "total": 1}`),
		"{\"id\": \"e-3\", \"type\": \"order.placed\", \"customer_id\": \"c-1\", \"at\": \"2026-01-01T00:00:00Z\", \"data\": {\"order_id\": \"\xff\"}}",
		`{"events": [` + event("e-4", "order.placed", "c-1", `{"order_id": "o", "total": 1}`) + `, {"id": "e-5", "at": 7}]}`,
		`{"id": "e", "type": "x", "customer_id": "c-1", "at": "yesterday"}`,
		strings.Replace(kari, `"kari@example.no"`, `"kari@example.no\r\nBcc: x@example.no"`, 1),
		`{"granted": true}`, `{"reason": "restored"}`,
		`{"kind": "webpush", "endpoint": "https://169.254.169.254/", "keys": {"p256dh": "x", "auth": "y"}}`,
		`{"kind": "http", "endpoint": "device-token"}`,
	} {
		for i := range routes {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		method, path := routes[int(route)%len(routes)].method, routes[int(route)%len(routes)].path
		r := fx.do(t, method, path, body)
		if r.Status >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, r.Status, r.Body)
		}
		if r.Status >= 400 && r.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%d without a problem document", r.Status)
		}
		forged := fmt.Sprintf("lj_%x", sha256.Sum256([]byte(body)))
		if r := fx.do(t, method, path, body, "Authorization", "Bearer "+forged); r.Status != 401 {
			t.Fatalf("forged token: %d", r.Status)
		}
	})
}
