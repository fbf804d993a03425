// Package httpserver builds lojal's HTTP servers, so every listener has
// the same limits: how long a client may take to send its headers and its
// body, how long a response may take, how long an idle connection is
// kept, and how large headers and bodies may be. Without them a client
// that sends one byte a minute holds a connection for as long as it likes.
package httpserver

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// Limits bound one server.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxBody caps every request body; handlers may cap theirs lower.
	MaxBody int64
}

// API is for the public API and preference centre: the largest body is an
// event batch (8 MiB).
var API = Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, MaxBody: 8 << 20}

// Internal is for health, readiness and metrics: GET only, small.
var Internal = Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
	IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10, MaxBody: 4 << 10}

// New returns a server for h on addr with limits l.
func New(addr string, h http.Handler, l Limits) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.MaxBytesHandler(h, l.MaxBody),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// RequireToken serves h only to requests bearing token (Authorization:
// Bearer), compared in constant time. An empty token serves everyone.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lojal metrics"`)
			http.Error(w, "metrics need Authorization: Bearer <LOJAL_METRICS_TOKEN>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
