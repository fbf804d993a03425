package channel

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/render"
)

// stubResolver answers from a table; nothing leaves the machine. A name
// may answer differently on each lookup (DNS rebinding).
type stubResolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	asked   map[string]int
}

func newStub(answers map[string][][]string) *stubResolver {
	return &stubResolver{answers: answers, asked: map[string]int{}}
}

func (r *stubResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := min(r.asked[host], len(seq)-1)
	r.asked[host]++
	var out []net.IPAddr
	for _, s := range seq[n] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

// public is a documentation-free public address no test ever dials: each
// test that resolves to it only checks, or is refused before the dial.
const public = "93.184.215.14"

func TestEgressRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	e := &Egress{Resolver: newStub(map[string][][]string{
		"push.example":       {{public}},
		"localhost.example":  {{"127.0.0.1"}},
		"metadata.example":   {{"169.254.169.254"}},
		"private.example":    {{"10.0.0.5"}},
		"rfc1918.example":    {{"192.168.1.1"}},
		"ula.example":        {{"fd00:ec2::254"}},
		"linklocal6.example": {{"fe80::1"}},
		"mixed.example":      {{public, "172.16.0.1"}},
		"nat64.example":      {{"64:ff9b::a00:1"}},
		"sixtofour.example":  {{"2002:7f00:1::1"}},
		"cgnat.example":      {{"100.100.100.200"}},
		"mapped.example":     {{"::ffff:127.0.0.1"}},
		"zero.example":       {{"0.0.0.0"}},
		"empty.example":      {{}},
	})}
	ctx := context.Background()
	if err := e.CheckURL(ctx, "https://push.example/send/abc"); err != nil {
		t.Fatalf("public push service refused: %v", err)
	}
	for _, u := range []string{
		"https://localhost.example/x", "https://metadata.example/latest/meta-data", "https://private.example/",
		"https://rfc1918.example/", "https://ula.example/", "https://linklocal6.example/", "https://mixed.example/",
		"https://nat64.example/", "https://sixtofour.example/", "https://cgnat.example/", "https://mapped.example/",
		"https://zero.example/", "https://empty.example/", "https://nowhere.example/",
		"https://127.0.0.1/", "https://[::1]/", "https://169.254.169.254/", "https://[::ffff:10.0.0.1]/", "https://10.1.2.3:8443/",
		"https://[fe80::1%25eth0]/", "https://0.0.0.0/", "https://255.255.255.255/", "https://224.0.0.1/",
		"http://push.example/", "https://user:pw@push.example/", "ftp://push.example/", "not a url",
	} {
		if err := e.CheckURL(ctx, u); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("CheckURL(%s) = %v, want ErrForbiddenAddress", u, err)
		}
	}
	// Loopback is an explicit opt-in, for tests and development.
	dev := &Egress{AllowLoopback: true, Resolver: e.Resolver}
	if err := dev.CheckURL(ctx, "https://localhost.example/x"); err != nil {
		t.Errorf("loopback with AllowLoopback: %v", err)
	}
	if err := dev.CheckURL(ctx, "https://metadata.example/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("AllowLoopback let link-local through: %v", err)
	}
	// A failed lookup is not a refusal: the caller may try again.
	flaky := &Egress{Resolver: resolverFunc(func(context.Context, string) ([]net.IPAddr, error) {
		return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
	})}
	if err := flaky.CheckURL(ctx, "https://push.example/"); err == nil || errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("temporary lookup failure: %v", err)
	}
}

type resolverFunc func(context.Context, string) ([]net.IPAddr, error)

func (f resolverFunc) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return f(ctx, host)
}

func TestEgressAllowlist(t *testing.T) {
	t.Parallel()
	e := &Egress{Hosts: []string{"fcm.googleapis.com", "*.notify.windows.com"},
		Resolver: newStub(map[string][][]string{"fcm.googleapis.com": {{public}}, "db5.notify.windows.com": {{public}},
			"evil.example": {{public}}, "notify.windows.com": {{public}}})}
	ctx := context.Background()
	for u, ok := range map[string]bool{
		"https://fcm.googleapis.com/fcm/send/x":     true,
		"https://FCM.googleapis.com./fcm/send/x":    true,
		"https://db5.notify.windows.com/w/?token=x": true,
		"https://notify.windows.com/":               false,
		"https://evil.example/":                     false,
		"https://fcm.googleapis.com.evil.example/":  false,
	} {
		if err := e.CheckURL(ctx, u); (err == nil) != ok {
			t.Errorf("CheckURL(%s) = %v, want allowed=%v", u, err, ok)
		}
	}
}

// TestEgressClientChecksAtDialTime: an endpoint that resolved to a public
// address when it was registered and to loopback when the worker dials
// (DNS rebinding) is refused, and nothing reaches the local server; a
// redirect is returned, not followed.
func TestEgressClientChecksAtDialTime(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	stub := newStub(map[string][][]string{"rebind.example": {{public}, {"127.0.0.1"}}, "local.example": {{"127.0.0.1"}}})
	e := &Egress{Resolver: stub}
	if err := e.CheckURL(context.Background(), "https://rebind.example/"); err != nil {
		t.Fatalf("registration: %v", err)
	}
	c := e.Client(5 * time.Second)
	_, err := c.Get("http://rebind.example:" + port + "/push")
	if _, perm := IsPermanent(err); !errors.Is(err, ErrForbiddenAddress) || !perm || hits.Load() != 0 {
		t.Fatalf("rebound to loopback: err %v, %d requests reached the server", err, hits.Load())
	}
	// With loopback allowed (tests, development) the same server answers,
	// and its redirect to the metadata service is not followed.
	dev := (&Egress{AllowLoopback: true, Resolver: stub}).Client(5 * time.Second)
	resp, err := dev.Get("http://local.example:" + port + "/push")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits.Load() != 1 {
		t.Fatalf("status %d after %d requests, want the 302 itself", resp.StatusCode, hits.Load())
	}
	// The operator's provider is trusted by host.
	trusted := e.Client(5*time.Second, "127.0.0.1")
	resp, err = trusted.Get(srv.URL)
	if err != nil {
		t.Fatalf("trusted provider: %v", err)
	}
	resp.Body.Close()
}

// TestEgressControlHook: the dialer's last check sees the socket's actual
// remote address.
func TestEgressControlHook(t *testing.T) {
	t.Parallel()
	e := &Egress{}
	for _, addr := range []string{"169.254.169.254:80", "[::1]:443", "10.0.0.1:443", "[fd00::1]:443"} {
		err := e.control("tcp", addr, nil)
		if _, perm := IsPermanent(err); !errors.Is(err, ErrForbiddenAddress) || !perm {
			t.Errorf("control(%s) = %v, want a permanent ErrForbiddenAddress", addr, err)
		}
	}
	if err := e.control("tcp", public+":443", nil); err != nil {
		t.Errorf("control(public) = %v", err)
	}
}

// TestPushToForbiddenEndpointIsRefusedNotRetried: a subscription stored
// before endpoints were checked, pointing at the metadata service, is
// refused for good (a retry cannot help) and nothing is dialled.
func TestPushToForbiddenEndpointIsRefusedNotRetried(t *testing.T) {
	t.Parallel()
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	p := NewPush(PushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@lojal.example",
		Egress: Egress{Resolver: newStub(map[string][][]string{"metadata.example": {{"169.254.169.254"}}})}}, slog.New(slog.DiscardHandler))
	env := Envelope{Channel: "push", To: "c-1", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Hei"},
		Push: []PushSubscription{{ID: 1, Kind: KindWebPush, Endpoint: "https://metadata.example/latest/meta-data",
			P256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", Auth: "tBHItJI5svbpez7KI4CCXg"}}}
	rc, err := p.Send(context.Background(), env)
	if _, ok := IsPermanent(err); !ok || rc.Delivered != 0 {
		t.Fatalf("Send = %+v, %v; want a permanent refusal", rc, err)
	}
}
