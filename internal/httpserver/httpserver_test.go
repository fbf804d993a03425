package httpserver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowClientsAreCutOff: a client that trickles its headers, one that
// stalls its body and an idle keep-alive connection are all closed; a body
// over the limit is refused.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	l := Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond, WriteTimeout: time.Second,
		IdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 1 << 10, MaxBody: 100}
	srv := New("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), l)
	ts := httptest.NewUnstartedServer(srv.Handler)
	ts.Config = srv
	ts.Start()
	t.Cleanup(ts.Close)
	addr := strings.TrimPrefix(ts.URL, "http://")
	closedWithin := func(name, send string, within time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, c) // until the server closes
		if d := time.Since(start); d > within {
			t.Errorf("%s: connection held %s, want it closed within %s", name, d, within)
		}
	}
	closedWithin("trickled headers", "GET / HTTP/1.1\r\nHost: x\r\n", time.Second)
	closedWithin("stalled body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc", 1500*time.Millisecond)
	closedWithin("idle keep-alive", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1500*time.Millisecond)

	resp, err := http.Post(ts.URL, "text/plain", strings.NewReader(strings.Repeat("a", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "431") {
		t.Errorf("oversized headers: %q", line)
	}
}

// TestEveryLimitIsSet: a zero limit means none at all in net/http.
func TestEveryLimitIsSet(t *testing.T) {
	t.Parallel()
	for name, l := range map[string]Limits{"API": API, "Internal": Internal} {
		s := New(":0", http.NotFoundHandler(), l)
		if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || l.MaxBody <= 0 {
			t.Errorf("%s: %+v", name, l)
		}
	}
}

func TestRequireToken(t *testing.T) {
	t.Parallel()
	h := RequireToken("s3cret-token", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }))
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "Bearer s3cret-token": 200, "s3cret-token": 401} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, w.Code, want)
		}
	}
}
