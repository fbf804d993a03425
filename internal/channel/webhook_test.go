package channel

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// secretPath and secretQuery stand for what helpdesks put in webhook
// URLs: the credentials.
const (
	secretPath  = "/hooks/T0KEN-in-the-path"
	secretQuery = "?token=s3cr3t-in-the-query"
	secretUser  = "bot:p4ssw0rd"
)

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{"T0KEN", "s3cr3t", "p4ssw0rd", "hooks"} {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the webhook's secret %q: %s", what, secret, s)
		}
	}
}

func TestWebhookPostsToLoopback(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.URL.String() + " " + r.Header.Get("Idempotency-Key") + " " + r.Header.Get("Content-Type") + " " + string(b))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	// The push allowlist does not apply to helpers' webhooks.
	w := NewWebhook(&Egress{AllowLoopback: true, Hosts: []string{"fcm.googleapis.com"}}, 5*time.Second)
	if err := w.Post(context.Background(), srv.URL+secretPath+secretQuery, "forward/r-1", []byte(`{"type":"message.replied"}`)); err != nil {
		t.Fatal(err)
	}
	want := "POST " + secretPath + secretQuery + ` forward/r-1 application/json {"type":"message.replied"}`
	if got.Load() != want {
		t.Errorf("received %q, want %q", got.Load(), want)
	}
}

// TestWebhookErrorsHideTheURL: whatever goes wrong, the error names the
// webhook by scheme and host only.
func TestWebhookErrorsHideTheURL(t *testing.T) {
	t.Parallel()
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	u, _ := url.Parse(srv.URL)
	withUser := "http://" + secretUser + "@" + u.Host + secretPath + secretQuery
	w := NewWebhook(&Egress{AllowLoopback: true}, 2*time.Second)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		status    int
		url       string
		permanent bool
	}{
		{"server error", 503, srv.URL + secretPath + secretQuery, false},
		{"too many requests", 429, srv.URL + secretPath, false},
		{"not found", 404, srv.URL + secretPath + secretQuery, true},
		{"user information", 500, withUser, false},
		{"nothing listening", 0, closedURL + secretPath + secretQuery, false},
		{"not a URL", 0, "http://[::1" + secretPath + secretQuery, true},
		{"no scheme", 0, "helpdesk.example" + secretPath + secretQuery, true},
	} {
		status.Store(int32(tc.status))
		err := w.Post(ctx, tc.url, "k", []byte("{}"))
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		assertNoSecret(t, tc.name, err.Error())
		if _, perm := IsPermanent(err); perm != tc.permanent {
			t.Errorf("%s: permanent %v, want %v (%v)", tc.name, perm, tc.permanent, err)
		}
	}
	if err := w.Post(ctx, srv.URL+secretPath, "k", nil); err == nil || !strings.Contains(err.Error(), u.Host) {
		t.Errorf("the error should still say which host: %v", err)
	}
}

// TestWebhookRefusesInternalAddresses: a helper webhook (policy.yaml, or
// a customer record's helper_webhook) gets the refusals push endpoints
// get, answered from a resolver stub; nothing is dialled.
func TestWebhookRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	stub := newStub(map[string][][]string{
		"localhost.example": {{"127.0.0.1"}},
		"metadata.example":  {{"169.254.169.254"}},
		"private.example":   {{"10.0.0.5"}},
		"ula.example":       {{"fd00:ec2::254"}},
		"mixed.example":     {{public, "172.16.0.1"}},
		"nat64.example":     {{"64:ff9b::a00:1"}},
		"cgnat.example":     {{"100.100.100.200"}},
	})
	w := NewWebhook(&Egress{Resolver: stub}, 2*time.Second)
	for _, host := range []string{"localhost.example", "metadata.example", "private.example", "ula.example", "mixed.example",
		"nat64.example", "cgnat.example", "nowhere.example", "127.0.0.1", "[::1]", "169.254.169.254", "10.1.2.3:8443", "0.0.0.0"} {
		err := w.Post(context.Background(), "https://"+host+secretPath+secretQuery, "k", []byte("{}"))
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: %v, want a refusal", host, err)
			continue
		}
		if _, perm := IsPermanent(err); !perm {
			t.Errorf("%s: a refusal is retried: %v", host, err)
		}
		assertNoSecret(t, host, err.Error())
	}
	// Plain http is refused unless loopback is allowed (tests, lojal dev).
	if err := w.Post(context.Background(), "http://"+public+secretPath, "k", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("http webhook: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://helpdesk.example/hooks/abc?token=x": "https://helpdesk.example/…",
		"https://u:p@helpdesk.example":               "https://helpdesk.example/…",
		"https://helpdesk.example:8443/":             "https://helpdesk.example:8443",
		"https://helpdesk.example":                   "https://helpdesk.example",
		"not a url with a s3cr3t":                    "(a webhook URL that does not parse)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
