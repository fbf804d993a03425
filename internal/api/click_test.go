package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

const clickKey = "click-test-signing-key-0123456789"

type clickFixture struct {
	store  *store.Store
	signer *links.Signer
	srv    *httptest.Server
	logs   *lockedBuffer
	now    time.Time
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// clickSetup serves the API over a store with one customer, c-1; the
// redirect handler needs nothing else.
func clickSetup(t *testing.T) *clickFixture {
	t.Helper()
	f := &clickFixture{store: pgtest.Store(t), logs: &lockedBuffer{}, now: time.Now().UTC().Truncate(time.Second)}
	var err error
	if f.signer, err = links.NewSigner([]byte(clickKey), "https://lojal.example", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.UpsertCustomer(context.Background(), journey.Customer{ID: "c-1", Email: "kari@example.no",
		Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: f.store, Links: f.signer, Log: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { return f.now }}
	f.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// link returns the path of a tracked link.
func (f *clickFixture) link(t *testing.T, customer, key, dest string) string {
	t.Helper()
	u, err := f.signer.ClickURL(customer, key, dest, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u, "https://lojal.example")
}

// open follows nothing: it returns the status, Location and body.
func (f *clickFixture) open(t *testing.T, method, path string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (f *clickFixture) engagements(t *testing.T) []store.Engagement {
	t.Helper()
	e, err := f.store.Engagements(context.Background(), "c-1")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestClickRecordsOnceAndRedirects: a tracked link records one click for
// its message and sends the customer where the template said; opening it
// again adds nothing; an expired link or a HEAD request (a mail scanner)
// still redirects and records nothing; a customer who is gone still gets
// where they were going.
func TestClickRecordsOnceAndRedirects(t *testing.T) {
	t.Parallel()
	f := clickSetup(t)
	dest := "https://shop.example/offer?a=1&b=2"
	path := f.link(t, "c-1", "journey/j/c-1/send#1.1", dest)
	status, loc, _ := f.open(t, "GET", path)
	if status != http.StatusFound || loc != dest {
		t.Fatalf("click: %d to %q, want 302 to %q", status, loc, dest)
	}
	got := f.engagements(t)
	if len(got) != 1 || got[0].Kind != store.EngagedClick || got[0].MessageKey != "journey/j/c-1/send#1.1" || !got[0].At.Equal(f.now) {
		t.Fatalf("after one click: %+v", got)
	}
	f.now = f.now.Add(time.Minute)
	if status, loc, _ := f.open(t, "GET", path); status != http.StatusFound || loc != dest {
		t.Fatalf("second click: %d %q", status, loc)
	}
	if got := f.engagements(t); len(got) != 1 || !got[0].At.Equal(f.now) {
		t.Fatalf("after the second click: %+v, want one row at %s", got, f.now)
	}
	head := f.link(t, "c-1", "journey/j/c-1/send#2.1", dest)
	if status, loc, _ := f.open(t, "HEAD", head); status != http.StatusFound || loc != dest {
		t.Fatalf("HEAD: %d %q", status, loc)
	}
	expired := f.link(t, "c-1", "journey/j/c-1/send#3.1", dest)
	f.now = f.now.Add(25 * time.Hour)
	if status, loc, _ := f.open(t, "GET", expired); status != http.StatusFound || loc != dest {
		t.Fatalf("expired: %d %q", status, loc)
	}
	if got := f.engagements(t); len(got) != 1 {
		t.Fatalf("a HEAD or an expired link recorded a click: %+v", got)
	}
	gone := f.link(t, "c-404", "journey/j/c-404/send#1.1", dest)
	if status, loc, _ := f.open(t, "GET", gone); status != http.StatusFound || loc != dest {
		t.Fatalf("unknown customer: %d %q", status, loc)
	}
	if strings.Contains(f.logs.String(), clickKey) {
		t.Fatal("the signing key is in the log")
	}
}

// TestForgedClicksRedirectNowhere: a tampered, forged, truncated, other
// kind's or oversized token gets a 4xx, no Location, no destination in
// the body, and records nothing.
func TestForgedClicksRedirectNowhere(t *testing.T) {
	t.Parallel()
	f := clickSetup(t)
	good := strings.TrimPrefix(f.link(t, "c-1", "m#1.1", "https://shop.example/offer"), "/k/")
	enc, sig, _ := strings.Cut(good, ".")
	evilEnc, _, _ := strings.Cut(strings.TrimPrefix(f.link(t, "c-1", "m#1.1", "https://evil.example/phish"), "/k/"), ".")
	other, _ := links.NewSigner([]byte("another-signing-key-0123456789ab"), "https://lojal.example", time.Hour)
	otherURL, _ := other.ClickURL("c-1", "m#1.1", "https://evil.example/phish", f.now)
	for name, path := range map[string]string{
		"another destination, same signature": "/k/" + evilEnc + "." + sig,
		"tampered signature":                  "/k/" + enc + "." + sig[:len(sig)-2] + "AA",
		"truncated":                           "/k/" + good[:len(good)-5],
		"payload only":                        "/k/" + enc,
		"signed with another key":             strings.TrimPrefix(otherURL, "https://lojal.example"),
		"a preference token":                  "/k/" + f.signer.Token(links.Claims{Kind: links.Preferences, CustomerID: "c-1", Expires: f.now.Add(time.Hour)}),
		"oversized":                           "/k/" + strings.Repeat("A", links.MaxClickToken+1) + "." + sig,
		"destination in the query":            "/k/garbage?url=https://evil.example/phish",
	} {
		status, loc, body := f.open(t, "GET", path)
		if status < 400 || status > 499 || loc != "" || strings.Contains(body, "evil.example") || strings.Contains(body, "shop.example") {
			t.Errorf("%s: %d Location %q\n%s", name, status, loc, body)
		}
	}
	if got := f.engagements(t); len(got) != 0 {
		t.Fatalf("a forged link recorded: %+v", got)
	}
}

// TestClickResetsIgnoredMessages: three messages older than the grace and
// not engaged with halve the caps; a click on a tracked link in the
// latest of them is engagement, and the next decision counts none
// ignored.
func TestClickResetsIgnoredMessages(t *testing.T) {
	t.Parallel()
	f := clickSetup(t)
	ctx := context.Background()
	rules := policy.Rules{Location: time.UTC, Caps: []policy.Cap{{Window: 7 * 24 * time.Hour, Max: 4}}, MaxDefer: 30 * 24 * time.Hour,
		Adaptive: &policy.Adaptive{HalveAfter: 3, Floor: 1, Grace: 48 * time.Hour}}
	decide := func(key string, at time.Time) policy.Decision {
		t.Helper()
		req := policy.Request{Key: key, Journey: "j", Step: "send", Channel: policy.Email, Topic: "news", FirstAsked: at}
		d, err := f.store.Decide(ctx, store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: "c-1", WorkflowID: "journey/j/c-1",
			JourneyID: "j", StepID: "send", Channel: policy.Email, Topic: "news", Priority: policy.Normal, FirstAsked: at, Now: at,
			ReservationTTL: 30 * 24 * time.Hour}, rules.Lookback(), func(s store.Snapshot) policy.Decision {
			return policy.Decide(rules, s.Relationship, s.Window, s.Waiting, req, at)
		})
		if err != nil {
			t.Fatal(err)
		}
		return d.Decision
	}
	start := f.now.Add(-5 * 24 * time.Hour)
	for i := range 3 {
		if d := decide(fmt.Sprintf("journey/j/c-1/send#%d", i+1), start.Add(time.Duration(i)*24*time.Hour)); d.Verdict != policy.Allow {
			t.Fatalf("message %d: %+v", i+1, d)
		}
	}
	before := decide("journey/j/c-1/send#4", f.now)
	if before.Detail.Ignored != 3 || before.Detail.CapHalvings != 1 {
		t.Fatalf("before the click: %d ignored, %d halvings, want 3 and 1 (%+v)", before.Detail.Ignored, before.Detail.CapHalvings, before.Detail)
	}
	path := f.link(t, "c-1", "journey/j/c-1/send#3.1", "https://shop.example/offer")
	if status, _, _ := f.open(t, "GET", path); status != http.StatusFound {
		t.Fatalf("click: %d", status)
	}
	f.now = f.now.Add(time.Minute)
	after := decide("journey/j/c-1/send#5", f.now)
	if after.Detail.Ignored != 0 || after.Detail.CapHalvings != 0 {
		t.Fatalf("after the click: %d ignored, %d halvings, want none (%+v)", after.Detail.Ignored, after.Detail.CapHalvings, after.Detail)
	}
}
