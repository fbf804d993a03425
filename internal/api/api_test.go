package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/store"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

type fixture struct {
	*stacktest.Stack
	srv   *httptest.Server
	token string
	now   time.Time
}

func setup(t testing.TB) *fixture {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Journeys: "../../journeys"})
	f := &fixture{Stack: s, token: "lj_test-token", now: time.Now()}
	if _, err := s.Store.CreateToken(context.Background(), "tests", f.token); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: s.Store, Dispatcher: s.Dispatcher, Catalog: s.Catalog, Links: s.Links, Metrics: metrics.New(),
		Log: s.Log, Bounces: &bounce.Intake{Store: s.Store, Log: s.Log}, PushEgress: &channel.Egress{Resolver: stubDNS}}
	f.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// stubDNS answers lookups in tests; nothing leaves the machine.
var stubDNS = resolver(map[string]string{"push.example": "93.184.215.14", "metadata.example": "169.254.169.254"})

type resolver map[string]string

func (r resolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ip, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []net.IPAddr{{IP: net.ParseIP(ip)}}, nil
}

type response struct {
	Status int
	Header http.Header
	Body   string
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.Status, r.Body)
	}
	return m
}

func (f *fixture) do(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

const kari = `{"id": "c-1", "email": "kari@example.no", "locale": "nb", "timezone": "Europe/Oslo",
 "consent": {"email": true, "push": false}, "topics_opted_out": [],
 "attributes": {"first_name": "Kari", "plan": "home", "segment": "family", "advisor_name": "Ingrid", "advisor_phone": "+47 1"}}`

func expectProblem(t *testing.T, r response, status int, typ string) {
	t.Helper()
	if r.Status != status || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %s, want %d problem+json: %s", r.Status, r.Header.Get("Content-Type"), status, r.Body)
	}
	p := r.json(t)
	if p["type"] != "https://lojal.dev/problems/"+typ || int(p["status"].(float64)) != status || p["title"] == "" {
		t.Fatalf("problem %v, want type %s", p, typ)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "GET", "/v1/customers/c-1", "", "Authorization", "")
	expectProblem(t, r, 401, "unauthorized")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	expectProblem(t, f.do(t, "GET", "/v1/customers/c-1", "", "Authorization", "Bearer lj_forged"), 401, "unauthorized")
	expectProblem(t, f.do(t, "GET", "/v1/customers/c-1", "", "Authorization", "Basic dXNlcjpwYXNz"), 401, "unauthorized")
	expectProblem(t, f.do(t, "GET", "/v1/customers/c-1", ""), 404, "unknown-customer")
	// Revoked tokens stop working (after the one-minute cache, which a
	// fresh server does not have).
	if _, err := f.Store.RevokeToken(context.Background(), "tests"); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: f.Store, Dispatcher: f.Dispatcher, Catalog: f.Catalog, Links: f.Links, Log: f.Log}
	fresh := httptest.NewServer(srv.Handler())
	defer fresh.Close()
	f2 := *f
	f2.srv = fresh
	expectProblem(t, f2.do(t, "GET", "/v1/customers/c-1", ""), 401, "unauthorized")
}

func TestCustomers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	if r := f.do(t, "PUT", "/v1/customers/c-1", kari); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := f.do(t, "PUT", "/v1/customers/c-1", kari); r.Status != 200 {
		t.Fatalf("replace: %d %s", r.Status, r.Body)
	}
	got := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if got["email"] != "kari@example.no" || got["attributes"].(map[string]any)["plan"] != "home" {
		t.Fatalf("get: %v", got)
	}
	bad := map[string]struct {
		body   string
		status int
		typ    string
	}{
		"malformed":        {`{"id": "c-1",`, 400, "malformed-json"},
		"wrong type":       {`{"id": "c-1", "email": 7}`, 422, "invalid"},
		"unknown field":    {`{"id": "c-1", "colour": "red"}`, 422, "invalid"},
		"undeclared attr":  {`{"id": "c-1", "attributes": {"shoe_size": "44"}}`, 422, "invalid"},
		"attr wrong type":  {`{"id": "c-1", "attributes": {"plan": 3}}`, 422, "invalid"},
		"bad time zone":    {`{"id": "c-1", "timezone": "Mars/Olympus"}`, 422, "invalid"},
		"id mismatch":      {`{"id": "c-2"}`, 422, "invalid"},
		"trailing garbage": {`{"id": "c-1"} {"id": "c-1"}`, 400, "malformed-json"},
		"empty":            {``, 400, "malformed-json"},
		"oversized":        {`{"id": "c-1", "attributes": {"first_name": "` + strings.Repeat("a", 70<<10) + `"}}`, 413, "too-large"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			expectProblem(t, f.do(t, "PUT", "/v1/customers/c-1", tc.body), tc.status, tc.typ)
		})
	}
	expectProblem(t, f.do(t, "PUT", "/v1/customers/c-1", kari, "Content-Type", "text/plain"), 415, "unsupported-media-type")
	// Nothing bad changed the customer.
	if got := f.do(t, "GET", "/v1/customers/c-1", "").json(t); got["timezone"] != "Europe/Oslo" || got["attributes"].(map[string]any)["plan"] != "home" {
		t.Fatalf("customer changed by bad requests: %v", got)
	}
	if r := f.do(t, "PUT", "/v1/customers/c-1/consent/push", `{"granted": true, "source": "app"}`); r.Status != 200 {
		t.Fatalf("consent: %d %s", r.Status, r.Body)
	}
	expectProblem(t, f.do(t, "PUT", "/v1/customers/c-1/consent/push", `{}`), 422, "invalid")
	expectProblem(t, f.do(t, "PUT", "/v1/customers/c-404/consent/push", `{"granted": true}`), 404, "unknown-customer")
	expectProblem(t, f.do(t, "PUT", "/v1/customers/c-1/consent/sms", `{"granted": true}`), 404, "not-found")
	sub := `{"kind": "webpush", "endpoint": "https://push.example/abc", "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}}`
	if r := f.do(t, "POST", "/v1/customers/c-1/push-subscriptions", sub); r.Status != 201 {
		t.Fatalf("push subscription: %d %s", r.Status, r.Body)
	}
	expectProblem(t, f.do(t, "POST", "/v1/customers/c-1/push-subscriptions", `{"endpoint": "http://insecure.example/x"}`), 422, "invalid")
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["push"] != true {
		t.Fatalf("consent not recorded: %v", c)
	}
}

func event(id, typ, customer, data string) string {
	return `{"id": "` + id + `", "type": "` + typ + `", "customer_id": "` + customer + `", "at": "` + time.Now().UTC().Format(time.RFC3339) + `", "data": ` + data + `}`
}

// TestEventsAreIdempotent: the same event delivered three times starts the
// journey once; bad events change nothing.
func TestEventsAreIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	if r := f.do(t, "PUT", "/v1/customers/c-1", kari); r.Status != 201 {
		t.Fatal(r.Body)
	}
	signup := event("e-1", "customer.signed_up", "c-1", `{"plan": "home"}`)
	statuses := []int{}
	for range 3 {
		statuses = append(statuses, f.do(t, "POST", "/v1/events", signup).Status)
	}
	if !slices.Equal(statuses, []int{202, 200, 200}) {
		t.Fatalf("statuses %v, want 202 then duplicates", statuses)
	}
	for name, tc := range map[string]struct {
		body, typ string
	}{
		"unknown type":     {event("e-2", "customer.teleported", "c-1", `{}`), "invalid"},
		"wrong data type":  {event("e-3", "customer.signed_up", "c-1", `{"plan": 7}`), "invalid"},
		"unknown field":    {event("e-4", "customer.signed_up", "c-1", `{"plan": "home", "x": 1}`), "invalid"},
		"unknown customer": {event("e-5", "customer.signed_up", "c-404", `{"plan": "home"}`), "unknown-customer"},
		"no time":          {`{"id": "e-6", "type": "customer.signed_up", "customer_id": "c-1", "data": {"plan": "home"}}`, "invalid"},
	} {
		t.Run(name, func(t *testing.T) { expectProblem(t, f.do(t, "POST", "/v1/events", tc.body), 422, tc.typ) })
	}
	// The valid event was routed in the request path, to both journeys it
	// starts: nothing is left for the sweeper.
	if n, err := f.Dispatcher.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("the sweeper found %d events to route, %v; want none", n, err)
	}
	got := f.do(t, "GET", "/v1/events/e-1", "").json(t)
	if got["status"] != "routed" || len(got["routes"].([]any)) != 2 {
		t.Fatalf("GET /v1/events/e-1: %v; want routed to two journeys", got)
	}
	for _, rt := range got["routes"].([]any) {
		if a := rt.(map[string]any)["action"]; a != "started" {
			t.Errorf("route %v, want started", rt)
		}
	}
	expectProblem(t, f.do(t, "GET", "/v1/events/e-404", ""), 404, "not-found")
	// Two journeys start on sign-up, once each, and each asks the policy
	// for its first message (at most one may go now; quiet hours may hold
	// both, depending on the time of day in Oslo).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, id := range []string{"journey/service-introduction/c-1", "journey/segment-onboarding/c-1"} {
		if _, err := f.Client.DescribeWorkflowExecution(ctx, id, ""); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	hist := f.do(t, "GET", "/v1/customers/c-1/history", "").json(t)["history"].([]any)
	for len(hist) < 2 && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		hist = f.do(t, "GET", "/v1/customers/c-1/history", "").json(t)["history"].([]any)
	}
	sends, journeys := 0, map[string]int{}
	for _, h := range hist {
		e := h.(map[string]any)
		journeys[e["journey"].(string)]++
		if e["decision"] == "allow" {
			sends++
		}
	}
	if sends > 1 || journeys["service-introduction"] != 1 || journeys["segment-onboarding"] != 1 {
		t.Fatalf("%d messages allowed; decisions per journey %v: %v", sends, journeys, hist)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	body := `{"events": [` + strings.Join([]string{
		event("b-1", "order.placed", "c-1", `{"order_id": "o-1", "total": 10.5}`),
		event("b-1", "order.placed", "c-1", `{"order_id": "o-1", "total": 10.5}`),
		event("b-2", "order.placed", "c-404", `{"order_id": "o-2", "total": 1}`),
		event("b-3", "order.nope", "c-1", `{}`),
	}, ",") + `]}`
	r := f.do(t, "POST", "/v1/events/batch", body)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var got struct {
		Results []ingest.Accepted
	}
	_ = json.Unmarshal([]byte(r.Body), &got)
	want := []string{"accepted", "duplicate", "unknown_customer", "invalid"}
	for i, w := range want {
		if got.Results[i].Status != w {
			t.Errorf("result %d: %+v, want %s", i, got.Results[i], w)
		}
	}
	expectProblem(t, f.do(t, "POST", "/v1/events/batch", `{"events": []}`), 422, "invalid")
	expectProblem(t, f.do(t, "POST", "/v1/events/batch", `{"events": {}}`), 422, "invalid")
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "GET", "/openapi.json", "", "Authorization", "")
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %v %s", err, r.Body[:min(len(r.Body), 200)])
	}
	for _, route := range api.Routes() {
		method, path, _ := strings.Cut(route, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("%s is not documented", route)
		}
	}
	// Metrics are not served on the public API port (lojal api serves them
	// on LOJAL_METRICS_ADDR, or behind LOJAL_METRICS_TOKEN).
	if r := f.do(t, "GET", "/metrics", "", "Authorization", ""); r.Status != 404 || strings.Contains(r.Body, "lojal_http_requests_total") {
		t.Errorf("metrics on the API port: %d", r.Status)
	}
	if r := f.do(t, "GET", "/readyz", "", "Authorization", ""); r.Status != 200 {
		t.Errorf("readyz: %d", r.Status)
	}
}

// TestBounceWebhook: a report is applied only to a recipient lojal sent
// the reported message to. Forged reports (about messages lojal never
// sent, or naming another address, or thousands of them) are 422 and
// change nothing; a suppression can be listed and lifted, with an audit
// record of who lifted it and why.
func TestBounceWebhook(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	dsn, err := os.ReadFile("../bounce/testdata/dsn.eml")
	if err != nil {
		t.Fatal(err)
	}
	report := func(body string) response {
		return f.do(t, "POST", "/v1/bounces", body, "Content-Type", "message/rfc822")
	}
	expectProblem(t, report(string(dsn)), 422, "no-matching-message")
	var many strings.Builder
	many.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.no\r\n")
	for i := range 12000 {
		fmt.Fprintf(&many, "\r\nFinal-Recipient: rfc822; c%d@example.no\r\nAction: failed\r\nStatus: 5.1.1\r\n", i)
	}
	many.WriteString("\r\n--B--\r\n")
	expectProblem(t, report(many.String()), 422, "too-many-recipients")
	expectProblem(t, report("Subject: hi\r\n\r\nout of office"), 422, "not-a-report")

	// The message dsn.eml is about, sent to kari.
	sent(t, f.Store, "c-1", "journey/renewal-reminder/c-1001/p-9@run/remind#1.1", "5975cf1bba432391c94667f5886225f6@lojal.example", "kari@example.no")
	expectProblem(t, report(strings.ReplaceAll(string(dsn), "Kari@Example.no", "victim@example.no")), 422, "no-matching-message")
	if list := f.do(t, "GET", "/v1/suppressions", "").json(t)["suppressions"].([]any); len(list) != 0 {
		t.Fatalf("forged reports suppressed %v", list)
	}
	r := report(string(dsn))
	if r.Status != 200 || !strings.Contains(r.Body, `"applied":true`) {
		t.Fatalf("genuine report: %d %s", r.Status, r.Body)
	}
	list := f.do(t, "GET", "/v1/suppressions", "").json(t)["suppressions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["address"] != "kari@example.no" || list[0].(map[string]any)["reason"] != "hard_bounce" {
		t.Fatalf("suppressions %v", list)
	}

	// Lifting needs a reason and is recorded.
	expectProblem(t, f.do(t, "DELETE", "/v1/suppressions/email/kari@example.no", `{}`), 422, "invalid")
	r = f.do(t, "DELETE", "/v1/suppressions/email/Kari@example.no", `{"reason": "mailbox restored, confirmed by phone"}`)
	if r.Status != 200 || r.json(t)["lifted_by"] != "api:tests" || r.json(t)["reason"] != "hard_bounce" {
		t.Fatalf("lift: %d %s", r.Status, r.Body)
	}
	expectProblem(t, f.do(t, "DELETE", "/v1/suppressions/email/kari@example.no", `{"reason": "again"}`), 404, "not-suppressed")
	if list := f.do(t, "GET", "/v1/suppressions?address=kari@example.no", "").json(t)["suppressions"].([]any); len(list) != 0 {
		t.Fatalf("still suppressed: %v", list)
	}
	lifts := f.do(t, "GET", "/v1/suppressions/lifts", "").json(t)["lifts"].([]any)
	if len(lifts) != 1 || lifts[0].(map[string]any)["why"] != "mailbox restored, confirmed by phone" {
		t.Fatalf("audit %v", lifts)
	}
}

// sent records in the ledger that lojal sent a message to address.
func sent(t *testing.T, st *store.Store, customer, key, messageID, address string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	_, err := st.Decide(ctx, store.Request{IdempotencyKey: key, RequestKey: key, CustomerID: customer, WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: "email", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}, time.Hour,
		func(store.Snapshot) policy.Decision {
			return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
		})
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := st.BeginSend(ctx, key, store.Sending{MessageID: messageID, Address: address, Locale: "nb", Subject: "Subject"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkSent(ctx, key, attempt, now); err != nil {
		t.Fatal(err)
	}
}

// Preference centre.

// unsubscribeAll is the customer's one-click unsubscribe (RFC 8058) from
// an email without a topic: out of all marketing.
func (f *fixture) unsubscribeAll(t *testing.T, customer string) {
	t.Helper()
	unsub := strings.TrimPrefix(f.Links.URL(links.Claims{Kind: links.Unsubscribe, CustomerID: customer,
		Expires: time.Now().Add(time.Hour), Message: "<m-1@lojal.example>"}), "http://lojal.test")
	if r := f.do(t, "POST", unsub, "List-Unsubscribe=One-Click", "Authorization", "", "Content-Type", "application/x-www-form-urlencoded"); r.Status != 200 {
		t.Fatalf("one-click %d: %s", r.Status, r.Body)
	}
}

func (f *fixture) link(t *testing.T, kind, customer, topic string, expires time.Time) string {
	t.Helper()
	u := f.Links.URL(links.Claims{Kind: kind, CustomerID: customer, Topic: topic, Expires: expires})
	return strings.TrimPrefix(u, "http://lojal.test")
}

func TestPreferenceCentre(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	prefs := f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))
	page := f.do(t, "GET", prefs, "", "Authorization", "")
	if page.Status != 200 || !strings.Contains(page.Body, `<html lang="nb">`) || !strings.Contains(page.Body, "Hei Kari") ||
		!strings.Contains(page.Body, `value="loyalty" checked`) || !strings.Contains(page.Body, `value="email" checked`) {
		t.Fatalf("page %d:\n%s", page.Status, page.Body)
	}
	// Keep service only, email only.
	form := url.Values{"topic": {"service"}, "channel": {"email"}, "action": {"save"}}
	r := f.do(t, "POST", prefs, form.Encode(), "Authorization", "", "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != 200 || !strings.Contains(r.Body, "Lagret") {
		t.Fatalf("save %d: %s", r.Status, r.Body)
	}
	c := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	opted := list(c["topics_opted_out"])
	if len(opted) != 3 || slices.Contains(opted, any("service")) {
		t.Fatalf("opted out of %v", opted)
	}
	// One-click unsubscribe (RFC 8058), no page involved, with the link
	// of one message: the unsubscribe names it.
	unsub := strings.TrimPrefix(f.Links.URL(links.Claims{Kind: links.Unsubscribe, CustomerID: "c-1", Topic: "service",
		Expires: time.Now().Add(time.Hour), Message: "<m-1@lojal.example>"}), "http://lojal.test")
	r = f.do(t, "POST", unsub, "List-Unsubscribe=One-Click", "Authorization", "", "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != 200 {
		t.Fatalf("one-click %d: %s", r.Status, r.Body)
	}
	c = f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if !slices.Contains(list(c["topics_opted_out"]), any("service")) {
		t.Fatalf("not unsubscribed from service: %v", c["topics_opted_out"])
	}
	var message string
	if err := f.Store.Pool().QueryRow(context.Background(),
		`SELECT message_id FROM consent_ledger WHERE customer_id = 'c-1' AND source = 'unsubscribe'`).Scan(&message); err != nil {
		t.Fatal(err)
	}
	if message != "<m-1@lojal.example>" {
		t.Fatalf("the unsubscribe names message %q, want the link's", message)
	}
	// The consent evidence shows it.
	ev := f.do(t, "GET", "/v1/customers/c-1/consent", "")
	if ev.Status != 200 || !strings.Contains(ev.Body, `"message_id":"\u003cm-1@lojal.example\u003e"`) {
		t.Fatalf("consent evidence %d does not name the message: %s", ev.Status, ev.Body)
	}
}

// TestTheConsentRouteCannotUndoAnUnsubscribe: PUT .../consent/{channel}
// carries no wording: it is another system's copy of the customer's
// consent, like a customer upsert, and cannot grant again what the
// customer withdrew themselves. It said 200 "granted" and granted.
func TestTheConsentRouteCannotUndoAnUnsubscribe(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	f.unsubscribeAll(t, "c-1")
	r := f.do(t, "PUT", "/v1/customers/c-1/consent/email", `{"granted": true, "source": "crm"}`)
	expectProblem(t, r, 409, "withdrawn-by-customer")
	if !strings.Contains(r.Body, "POST /v1/customers/{id}/consent") {
		t.Errorf("the refusal does not say what to do: %s", r.Body)
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["consent"].(map[string]any)["email"] != false {
		t.Fatalf("consent after the refused grant: %v", c["consent"])
	}
	// Withdrawing through the route still works.
	if r := f.do(t, "PUT", "/v1/customers/c-1/consent/email", `{"granted": false}`); r.Status != 200 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
}

// TestSavingPreferencesKeepsASoftOptInTheCustomerLeftAlone: a customer
// marketed to on a soft opt-in (a purchase) saw the email box unticked;
// unticking one topic and pressing Save posted email=false, which ended
// the soft opt-in with a withdrawal "by the customer" they never made.
// The box shows what the customer gets, and only a box the customer
// changed is recorded.
func TestSavingPreferencesKeepsASoftOptInTheCustomerLeftAlone(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", strings.Replace(kari, `"consent": {"email": true, "push": false}`, `"consent": {}`, 1))
	if r := f.do(t, "POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "grant", "basis": "soft_opt_in",
		"sale_id": "o-123", "sale_at": "2026-02-01T10:00:00Z", "product_group": "home", "at": "2026-02-01T10:00:00Z"}]}`); r.Status != 201 {
		t.Fatalf("soft opt-in: %d %s", r.Status, r.Body)
	}
	prefs := f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))
	if page := f.do(t, "GET", prefs, "", "Authorization", ""); !strings.Contains(page.Body, `value="email" checked`) {
		t.Fatalf("the email box does not show the soft opt-in:\n%s", page.Body)
	}
	withdrawals := func() int {
		var n int
		if err := f.Store.Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM consent_ledger WHERE customer_id = 'c-1' AND action = 'withdraw' AND topic = '*'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Untick one topic, leave email as shown.
	form := url.Values{"topic": {"service", "renewal"}, "channel": {"email"}, "action": {"save"}}
	if r := f.do(t, "POST", prefs, form.Encode(), "Authorization", "", "Content-Type", "application/x-www-form-urlencoded"); r.Status != 200 {
		t.Fatalf("save %d: %s", r.Status, r.Body)
	}
	if n := withdrawals(); n != 0 {
		t.Fatalf("saving a topic choice recorded %d channel withdrawals the customer did not make", n)
	}
	// Untick email: now the customer withdraws, and it is recorded.
	form.Del("channel")
	if r := f.do(t, "POST", prefs, form.Encode(), "Authorization", "", "Content-Type", "application/x-www-form-urlencoded"); r.Status != 200 {
		t.Fatalf("save %d: %s", r.Status, r.Body)
	}
	if n := withdrawals(); n != 1 {
		t.Fatalf("unticking email recorded %d withdrawals, want 1", n)
	}
}

// TestAStaleTabCannotUndoAnUnsubscribe: the customer opens the
// preference centre, then unsubscribes from an email, then saves a topic
// change in the tab still open. Its boxes show what was true when it
// loaded; only what the customer changed there is recorded, so the
// unsubscribe stands.
func TestAStaleTabCannotUndoAnUnsubscribe(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	prefs := f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))
	page := f.do(t, "GET", prefs, "", "Authorization", "")
	shown := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="shown" value="([^"]+)">`).FindAllStringSubmatch(page.Body, -1) {
		shown.Add("shown", m[1])
	}
	if len(shown["shown"]) == 0 {
		t.Fatalf("the page does not say what it showed:\n%s", page.Body)
	}
	f.unsubscribeAll(t, "c-1")
	// The stale tab: everything as it showed, but one topic unticked.
	form := url.Values{"action": {"save"}, "channel": {"email"}, "shown": shown["shown"]}
	for _, v := range shown["shown"] {
		if topic, ok := strings.CutPrefix(v, "topic:"); ok && topic != "loyalty" {
			form.Add("topic", topic)
		}
	}
	if r := f.do(t, "POST", prefs, form.Encode(), "Authorization", "", "Content-Type", "application/x-www-form-urlencoded"); r.Status != 200 {
		t.Fatalf("save %d: %s", r.Status, r.Body)
	}
	c := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if c["consent"].(map[string]any)["email"] != false {
		t.Fatalf("the stale tab undid the unsubscribe: consent %v", c["consent"])
	}
	if opted := list(c["topics_opted_out"]); len(opted) < 2 {
		t.Fatalf("the stale tab lifted topic opt-outs: %v", opted)
	}
}

func TestBadLinksRevealNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	good := f.link(t, links.Preferences, "c-1", "", time.Now().Add(time.Hour))
	tampered := good[:len(good)-3] + "xyz"
	// Swapping the customer in the payload breaks the signature.
	forged := f.link(t, links.Preferences, "c-2", "", time.Now().Add(time.Hour))
	forged = forged[:strings.LastIndex(forged, ".")] + good[strings.LastIndex(good, "."):]
	expired := f.link(t, links.Preferences, "c-1", "", time.Now().Add(-time.Minute))
	for name, tc := range map[string]struct {
		path   string
		status int
		text   string
	}{
		"tampered": {tampered, 400, "ikke gyldig"},
		"forged":   {forged, 400, "ikke gyldig"},
		"garbage":  {"/p/not-a-token", 400, "ikke gyldig"},
		"expired":  {expired, 410, "utløpt"},
	} {
		for _, method := range []string{"GET", "POST"} {
			r := f.do(t, method, tc.path, "action=unsubscribe_all", "Authorization", "", "Accept-Language", "nb-NO,nb;q=0.9,en;q=0.5",
				"Content-Type", "application/x-www-form-urlencoded")
			if r.Status != tc.status || !strings.Contains(r.Body, tc.text) || strings.Contains(r.Body, "Kari") || strings.Contains(r.Body, "kari@") {
				t.Errorf("%s %s: %d\n%s", name, method, r.Status, r.Body)
			}
		}
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); len(list(c["topics_opted_out"])) != 0 || c["consent"].(map[string]any)["email"] != true {
		t.Fatalf("a bad link changed the customer: %v", c)
	}
}

// list reads a JSON array that may be left out when empty.
func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestLinksWorkOnlyOnTheirOwnPath: the List-Unsubscribe link cannot open
// or save the preference centre, a preference link cannot unsubscribe,
// visiting an unsubscribe link mints no longer-lived link, and a token
// spelled differently (padding bits) is not the same token.
func TestLinksWorkOnlyOnTheirOwnPath(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	exp := time.Now().Add(time.Hour)
	unsub := f.link(t, links.Unsubscribe, "c-1", "", exp)
	prefs := f.link(t, links.Preferences, "c-1", "", exp)
	asPrefs := "/p/" + strings.TrimPrefix(unsub, "/u/")
	asUnsub := "/u/" + strings.TrimPrefix(prefs, "/p/")
	form := url.Values{"topic": {"service", "onboarding", "feedback", "loyalty"}, "channel": {"email", "push"}, "action": {"save"}}.Encode()
	for name, tc := range map[string]struct{ method, path, body string }{
		"unsubscribe link opens preferences":  {"GET", asPrefs, ""},
		"unsubscribe link saves preferences":  {"POST", asPrefs, form},
		"preference link shows unsubscribe":   {"GET", asUnsub, ""},
		"preference link unsubscribes":        {"POST", asUnsub, "List-Unsubscribe=One-Click"},
		"non-canonical unsubscribe signature": {"POST", respell(unsub), "List-Unsubscribe=One-Click"},
		"non-canonical preference signature":  {"GET", respell(prefs), ""},
	} {
		r := f.do(t, tc.method, tc.path, tc.body, "Authorization", "", "Content-Type", "application/x-www-form-urlencoded")
		if r.Status != 400 || strings.Contains(r.Body, "Kari") || !strings.Contains(r.Body, `id="problem"`) {
			t.Errorf("%s: %d\n%s", name, r.Status, r.Body)
		}
	}
	c := f.do(t, "GET", "/v1/customers/c-1", "").json(t)
	if len(list(c["topics_opted_out"])) != 0 || c["consent"].(map[string]any)["email"] != true || c["consent"].(map[string]any)["push"] != false {
		t.Fatalf("a link of the wrong kind changed the customer: %v", c)
	}
	page := f.do(t, "GET", unsub, "", "Authorization", "")
	if page.Status != 200 || !strings.Contains(page.Body, "List-Unsubscribe") {
		t.Fatalf("unsubscribe page %d:\n%s", page.Status, page.Body)
	}
	if strings.Contains(page.Body, "/p/") {
		t.Fatalf("visiting the unsubscribe link minted a preference link:\n%s", page.Body)
	}
}

// respell changes the padding bits of a link's last character: the same
// bytes under lenient base64, another token under strict.
func respell(link string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, link[len(link)-1])
	return link[:len(link)-1] + string(alphabet[last^1])
}

// result is one event's result in a batch.
type result struct {
	ID, Status, Error, Pointer string
}

// TestBatchIsPerEvent: one event with a NUL, one with bytes that are not
// UTF-8 and one that does not decode cost only themselves; the other 997
// of a full batch are stored.
func TestBatchIsPerEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	evs := make([]string, 0, 1000)
	for i := range 997 {
		evs = append(evs, event(fmt.Sprintf("n-%d", i), "order.placed", "c-1", fmt.Sprintf(`{"order_id": "o-%d", "total": 1}`, i)))
	}
	evs = append(evs,
		event("nul", "order.placed", "c-1", `{"order_id": "o\u0000", "total": 1}`),
		event("utf8", "order.placed", "c-1", "{\"order_id\": \"o\xff\", \"total\": 1}"),
		`{"id": "typed", "type": "order.placed", "customer_id": "c-1", "at": 7}`)
	r := f.do(t, "POST", "/v1/events/batch", `{"events": [`+strings.Join(evs, ",")+`]}`)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body[:min(len(r.Body), 500)])
	}
	var got struct {
		Results []result
		Counts  map[string]int
	}
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Counts["accepted"] != 997 || got.Counts["invalid"] != 3 || len(got.Results) != 1000 {
		t.Fatalf("counts %v", got.Counts)
	}
	for i, want := range map[int]struct{ id, pointer, text string }{
		997: {"nul", "/events/997/data/order_id", "NUL"},
		998: {"utf8", "/events/998", "UTF-8"},
		999: {"typed", "/events/999/at", "RFC 3339"},
	} {
		a := got.Results[i]
		if a.ID != want.id || a.Status != "invalid" || a.Pointer != want.pointer || !strings.Contains(a.Error, want.text) {
			t.Errorf("result %d: %+v, want %+v", i, a, want)
		}
	}
	ctx := context.Background()
	for _, id := range []string{"n-0", "n-500", "n-996"} {
		if _, err := f.Store.Event(ctx, id); err != nil {
			t.Errorf("good event %s not stored: %v", id, err)
		}
	}
	for _, id := range []string{"nul", "utf8", "typed"} {
		if _, err := f.Store.Event(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bad event %s: %v, want not stored", id, err)
		}
	}
}

// TestBadTextIsRefusedNotAServerError: a NUL anywhere in an event or a
// customer was a 500 ("safe to retry") from Postgres; it is the client's
// error, pointed at.
func TestBadTextIsRefusedNotAServerError(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	for name, tc := range map[string]struct{ method, path, body, pointer string }{
		"event data":         {"POST", "/v1/events", event("e-1", "order.placed", "c-1", `{"order_id": "o\u0000", "total": 1}`), "/data/order_id"},
		"event field name":   {"POST", "/v1/events", event("e-1", "order.placed", "c-1", `{"\u0000": 1}`), "/data/\x00"},
		"event not UTF-8":    {"POST", "/v1/events", event("e-1", "order.placed", "c-1", "{\"order_id\": \"\xc3\"}"), ""},
		"customer attribute": {"PUT", "/v1/customers/c-1", strings.Replace(kari, `"Kari"`, `"Ka\u0000ri"`, 1), "/attributes/first_name"},
		"customer topic":     {"PUT", "/v1/customers/c-1", strings.Replace(kari, `"topics_opted_out": []`, `"topics_opted_out": ["x\u0000"]`, 1), "/topics_opted_out/0"},
		"customer email":     {"PUT", "/v1/customers/c-1", strings.Replace(kari, `"kari@example.no"`, `"kari@example.no\r\nBcc: x@example.no"`, 1), "/email"},
		"not an address":     {"PUT", "/v1/customers/c-1", strings.Replace(kari, `"kari@example.no"`, `"kari"`, 1), "/email"},
		// Free text of the other routes: a CRM's withdrawal that failed
		// with a 500 every time it was retried left the customer getting
		// marketing.
		"consent source":   {"PUT", "/v1/customers/c-1/consent/email", `{"granted": false, "source": "crm\u0000"}`, "/source"},
		"consent evidence": {"POST", "/v1/customers/c-1/consent", `{"entries": [{"channel": "email", "action": "withdraw", "basis": "consent", "evidence": "x\u0000"}]}`, "/entries/0/evidence"},
		"double opt-in":    {"POST", "/v1/customers/c-1/consent/email/double-opt-in", `{"wording": "Ja\u0000", "locale": "nb"}`, "/wording"},
		"push endpoint":    {"POST", "/v1/customers/c-1/push-subscriptions", `{"kind": "http", "endpoint": "https://push.example/\u0000"}`, "/endpoint"},
	} {
		t.Run(name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.path, tc.body)
			expectProblem(t, r, 422, "invalid")
			var p api.Problem
			_ = json.Unmarshal([]byte(r.Body), &p)
			if tc.pointer != "" && (len(p.Errors) != 1 || p.Errors[0].Pointer != tc.pointer) {
				t.Fatalf("errors %+v, want pointer %q", p.Errors, tc.pointer)
			}
		})
	}
	if c := f.do(t, "GET", "/v1/customers/c-1", "").json(t); c["email"] != "kari@example.no" || c["attributes"].(map[string]any)["first_name"] != "Kari" {
		t.Fatalf("customer changed: %v", c)
	}
}

// TestEventIDConflict: the same id with the same event is a duplicate;
// with another event it is a conflict naming the id, and nothing of the
// second event is kept.
func TestEventIDConflict(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	at := time.Now().UTC().Truncate(time.Second)
	ev := func(id, total string, at time.Time) string {
		return `{"id": "` + id + `", "type": "order.placed", "customer_id": "c-1", "at": "` + at.Format(time.RFC3339Nano) + `", "data": {"order_id": "o-1", "total": ` + total + `}}`
	}
	if r := f.do(t, "POST", "/v1/events", ev("x-1", "10.5", at)); r.Status != 202 {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	// The same event, spelled differently, is the same event.
	same := `{"data": {"total": 10.50, "order_id": "o-1"}, "at": "` + at.In(time.FixedZone("CET", 3600)).Format(time.RFC3339) + `", "customer_id": "c-1", "type": "order.placed", "id": "x-1"}`
	if r := f.do(t, "POST", "/v1/events", same); r.Status != 200 || !strings.Contains(r.Body, `"duplicate"`) {
		t.Fatalf("redelivery: %d %s", r.Status, r.Body)
	}
	for name, body := range map[string]string{
		"other data": ev("x-1", "99", at),
		"other time": ev("x-1", "10.5", at.Add(time.Second)),
		"other type": `{"id": "x-1", "type": "customer.signed_up", "customer_id": "c-1", "at": "` + at.Format(time.RFC3339) + `", "data": {"plan": "home"}}`,
	} {
		r := f.do(t, "POST", "/v1/events", body)
		expectProblem(t, r, 409, "conflict")
		if !strings.Contains(r.Body, `x-1`) {
			t.Errorf("%s: conflict does not name the id: %s", name, r.Body)
		}
	}
	r := f.do(t, "POST", "/v1/events/batch", `{"events": [`+ev("x-1", "10.5", at)+`,`+ev("x-1", "11", at)+`,`+ev("x-2", "1", at)+`,`+ev("x-2", "2", at)+`]}`)
	var got struct{ Results []result }
	_ = json.Unmarshal([]byte(r.Body), &got)
	want := []string{"duplicate", "conflict", "accepted", "conflict"}
	for i, w := range want {
		if i >= len(got.Results) || got.Results[i].Status != w {
			t.Fatalf("batch results %+v, want %v", got.Results, want)
		}
	}
	if !strings.Contains(got.Results[1].Error, `"x-1"`) || got.Results[1].Pointer != "/events/1/id" {
		t.Errorf("conflict result %+v", got.Results[1])
	}
	for id, total := range map[string]float64{"x-1": 10.5, "x-2": 1.0} {
		rec, err := f.Store.Event(context.Background(), id)
		if err != nil || rec.Event.Data["total"] != total {
			t.Fatalf("stored %s: %+v %v; want the first payload (total %v)", id, rec.Event.Data, err, total)
		}
	}
}

// TestPushEndpointsMustBePublic: a Web Push endpoint is a URL the worker
// will POST to; one on the worker's own network (metadata service,
// loopback, private ranges) is refused when it is registered.
func TestPushEndpointsMustBePublic(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	keys := `"keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}`
	for _, endpoint := range []string{
		"https://169.254.169.254/latest/meta-data/", "https://127.0.0.1:8080/v1/customers", "https://[::1]/",
		"https://10.0.0.7/", "https://192.168.0.1/", "https://[fd00:ec2::254]/", "https://[::ffff:127.0.0.1]/",
		"https://metadata.example/", "https://no-such-host.example/",
	} {
		r := f.do(t, "POST", "/v1/customers/c-1/push-subscriptions", `{"kind": "webpush", "endpoint": "`+endpoint+`", `+keys+`}`)
		expectProblem(t, r, 422, "invalid")
		if !strings.Contains(r.Body, `"pointer":"/endpoint"`) {
			t.Errorf("%s: no pointer to the endpoint: %s", endpoint, r.Body)
		}
	}
	if r := f.do(t, "POST", "/v1/customers/c-1/push-subscriptions", `{"kind": "webpush", "endpoint": "https://push.example/ok", `+keys+`}`); r.Status != 201 {
		t.Fatalf("public endpoint: %d %s", r.Status, r.Body)
	}
	subs, err := f.Store.PushSubscriptions(context.Background(), "c-1")
	if err != nil || len(subs) != 1 {
		t.Fatalf("stored %+v %v, want only the public endpoint", subs, err)
	}
}

// TestBadTextInTheURL: an id, address or query holding a NUL or bytes that
// are not UTF-8 is the client's error, not a database failure.
func TestBadTextInTheURL(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(t, "PUT", "/v1/customers/c-1", kari)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/customers/c%00", ""},
		{"GET", "/v1/customers/c%FF", ""},
		{"GET", "/v1/customers/c%00/history", ""},
		{"PUT", "/v1/customers/c-1/consent/email?x=%00", `{"granted": true}`},
		{"GET", "/v1/suppressions?address=%00", ""},
		{"GET", "/v1/suppressions/lifts?address=%FF", ""},
		{"DELETE", "/v1/suppressions/email/k%00@example.no", `{"reason": "x"}`},
	} {
		expectProblem(t, f.do(t, tc.method, tc.path, tc.body), 400, "malformed")
	}
	expectProblem(t, f.do(t, "DELETE", "/v1/suppressions/email/kari@example.no", `{"reason": "x\u0000"}`), 422, "invalid")
}

// TestReadinessTellsStrangersNothing: /readyz is on the public port with
// no token. When Postgres is away it said why, in the driver's words,
// which name the database user, the database and the host it dialled.
// It says "not ready" and logs the error.
func TestReadinessTellsStrangersNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	st, err := store.Open(context.Background(), pgtest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // every ping now fails, with the driver's words
	srv := httptest.NewServer((&api.Server{Store: st, Dispatcher: f.Dispatcher, Catalog: f.Catalog, Links: f.Links, Metrics: metrics.New(),
		Log: f.Log}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), "closed") || !strings.Contains(string(b), "database") {
		t.Fatalf("readyz %d %s; want 503 that names the database and nothing the driver said", resp.StatusCode, b)
	}
}

// TestAnInternalErrorDoesNotLogTheLinkToken: nor does a request that
// fails (Postgres away) on such a route.
func TestAnInternalErrorDoesNotLogTheLinkToken(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &api.Server{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /u/{token}", func(w http.ResponseWriter, r *http.Request) { s.Internal(w, r, errors.New("database: not reachable")) })
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/u/SECRET-LINK-TOKEN.sig", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", w.Code)
	}
	if strings.Contains(logs.String(), "SECRET-LINK-TOKEN") || !strings.Contains(logs.String(), "/u/{token}") {
		t.Fatalf("the log line, want the route and no token:\n%s", logs.String())
	}
}

// TestAPanicDoesNotLogTheLinkToken: on /p/, /u/, /a/, /k/ and /o/ the
// path is a customer's link token, months of access to their preference
// centre; a handler's panic must log its route, not its path.
func TestAPanicDoesNotLogTheLinkToken(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &api.Server{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{token}", func(http.ResponseWriter, *http.Request) { panic("a nil map") })
	w := httptest.NewRecorder()
	s.Recover(mux).ServeHTTP(w, httptest.NewRequest("GET", "/p/SECRET-LINK-TOKEN.sig", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", w.Code)
	}
	if strings.Contains(logs.String(), "SECRET-LINK-TOKEN") || !strings.Contains(logs.String(), "/p/{token}") {
		t.Fatalf("the log line, want the route and no token:\n%s", logs.String())
	}
}
