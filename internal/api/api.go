// Package api is lojal's HTTP JSON API and preference centre: customers,
// consent, push subscriptions and events come in; a customer's contact
// history goes out; customers manage what they receive through signed
// links in every message.
//
// Errors are RFC 9457 problem details. Every /v1 route needs a bearer token
// (stored hashed); the preference centre is authorised by its signed link.
package api

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dialogue"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/store"
)

// Request size limits.
const (
	maxBody      = 64 << 10
	maxBatchBody = 8 << 20
	maxBatch     = 1000
)

//go:embed openapi.json
var openAPI []byte

// Server serves the API.
type Server struct {
	Store      *store.Store
	Dispatcher *ingest.Dispatcher
	Catalog    catalog.Source
	Links      *links.Signer
	Metrics    *metrics.Metrics
	Log        *slog.Logger
	Bounces    *bounce.Intake
	// PushEgress vets Web Push endpoints when they are registered (the
	// worker checks again when it dials). Nil means the defaults: public
	// addresses only, any host.
	PushEgress *channel.Egress
	// Replies takes free text written with one-click answers to the
	// helper; nil keeps the text with the answer only.
	Replies *dialogue.Intake
	// Now is the clock (tests set it).
	Now func() time.Time
	// Retention is how long the ledgers are kept, for the evidence
	// export (zero: the defaults).
	Retention store.Retention

	tokens tokenCache
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc, auth bool) {
		name := pattern
		var handler http.Handler = h
		if auth {
			handler = s.authenticate(handler)
		}
		mux.Handle(pattern, s.instrument(name, handler))
	}
	route("GET /healthz", s.healthz, false)
	route("GET /readyz", s.readyz, false)
	route("GET /openapi.json", s.openapi, false)
	route("PUT /v1/customers/{id}", s.putCustomer, true)
	route("GET /v1/customers/{id}", s.getCustomer, true)
	route("PUT /v1/customers/{id}/consent/{channel}", s.putConsent, true)
	route("POST /v1/customers/{id}/consent", s.postConsent, true)
	route("GET /v1/customers/{id}/consent", s.getConsent, true)
	route("POST /v1/customers/{id}/consent/email/double-opt-in", s.postDoubleOptIn, true)
	route("POST /v1/customers/{id}/push-subscriptions", s.postPushSubscription, true)
	route("GET /v1/customers/{id}/history", s.getHistory, true)
	route("POST /v1/events", s.postEvent, true)
	route("POST /v1/events/batch", s.postEvents, true)
	route("GET /v1/events/{id}", s.getEvent, true)
	route("POST /v1/bounces", s.postBounce, true)
	route("GET /v1/suppressions", s.getSuppressions, true)
	route("GET /v1/suppressions/lifts", s.getLifts, true)
	route("DELETE /v1/suppressions/{channel}/{address}", s.deleteSuppression, true)
	route("GET /p/{token}", s.preferencesPage, false)
	route("POST /p/{token}", s.savePreferences, false)
	route("GET /u/{token}", s.unsubscribePage, false)
	route("POST /u/{token}", s.unsubscribe, false)
	route("GET /a/{token}", s.answer, false)
	route("POST /a/{token}", s.answerMore, false)
	route("GET /c/{token}", s.answeredLink, false)
	route("POST /c/{token}", s.answeredLink, false)
	route("POST /v1/conversations/{id}/answered", s.postAnswered, true)
	route("GET /o/{token}", s.confirmPage, false)
	route("POST /o/{token}", s.confirmConsent, false)
	route("GET /k/{token}", s.click, false)
	mux.Handle("/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem(w, r, http.StatusNotFound, "not-found", "No such resource", "no route for "+r.Method+" "+r.URL.Path)
	})))
	return s.recover(cleanURL(mux))
}

// cleanURL refuses a path or query that holds a NUL or bytes that are not
// UTF-8 once decoded: they can name no customer or address, and Postgres
// would refuse them with an error that looks like lojal's fault.
func cleanURL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := plainText(r.URL.Path)
		if q, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			ok = false
		} else {
			for k, vs := range q {
				ok = ok && plainText(k)
				for _, v := range vs {
					ok = ok && plainText(v)
				}
			}
		}
		if !ok {
			problem(w, r, http.StatusBadRequest, "malformed", "Malformed URL", "the path or query holds a NUL or bytes that are not UTF-8")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// plainText reports whether s is UTF-8 without NUL.
func plainText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// Routes lists the API's routes (for the OpenAPI document's test).
func Routes() []string {
	return []string{
		"GET /healthz", "GET /readyz", "GET /openapi.json",
		"PUT /v1/customers/{id}", "GET /v1/customers/{id}", "PUT /v1/customers/{id}/consent/{channel}",
		"POST /v1/customers/{id}/consent", "GET /v1/customers/{id}/consent", "POST /v1/customers/{id}/consent/email/double-opt-in",
		"POST /v1/customers/{id}/push-subscriptions", "GET /v1/customers/{id}/history",
		"POST /v1/events", "POST /v1/events/batch", "GET /v1/events/{id}", "POST /v1/bounces",
		"GET /v1/suppressions", "GET /v1/suppressions/lifts", "DELETE /v1/suppressions/{channel}/{address}",
		"GET /p/{token}", "POST /p/{token}", "GET /u/{token}", "POST /u/{token}",
		"GET /a/{token}", "POST /a/{token}", "GET /c/{token}", "POST /c/{token}", "POST /v1/conversations/{id}/answered",
		"GET /o/{token}", "POST /o/{token}", "GET /k/{token}",
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		// This port is public: the driver's words (the database user, the
		// database, the host) go to the log, not to whoever asks.
		s.Log.Warn("not ready: database", "err", err)
		problem(w, r, http.StatusServiceUnavailable, "not-ready", "Not ready", "database: not reachable")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if s.Metrics != nil {
			s.Metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
			s.Metrics.HTTPSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				// The route, not the path: on /p/, /u/, /a/, /k/ and /o/
				// the path is a customer's link token.
				s.Log.Error("panic in handler", "route", r.Pattern, "panic", v, "stack", string(debug.Stack()))
				problem(w, r, http.StatusInternalServerError, "internal", "Internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// tokenCache remembers verified tokens (and their names) for a minute, so
// a busy client does not cost a database round trip per request.
// Revocation takes effect within that minute.
type tokenCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedToken
}

type cachedToken struct {
	name string
	exp  time.Time
}

const tokenTTL = time.Minute

func (c *tokenCache) get(key [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, found := c.m[key]
	return t.name, found && now.Before(t.exp)
}

func (c *tokenCache) remember(key [32]byte, name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[[32]byte]cachedToken{}
	}
	c.m[key] = cachedToken{name: name, exp: now.Add(tokenTTL)}
}

type clientKey struct{}

// client names the API token a request was authenticated with, for audit
// records.
func client(r *http.Request) string {
	name, _ := r.Context().Value(clientKey{}).(string)
	return "api:" + name
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" || len(secret) > 256 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lojal"`)
			problem(w, r, http.StatusUnauthorized, "unauthorized", "Missing bearer token", "send Authorization: Bearer <token> (lojal api token create)")
			return
		}
		key := sha256.Sum256([]byte(secret))
		now := s.now()
		name, ok := s.tokens.get(key, now)
		if !ok {
			t, err := s.Store.TokenFor(r.Context(), secret)
			if errors.Is(err, store.ErrBadToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="lojal", error="invalid_token"`)
				problem(w, r, http.StatusUnauthorized, "unauthorized", "Invalid token", "the token is unknown or revoked")
				return
			}
			if err != nil {
				s.internal(w, r, err)
				return
			}
			name = t.Name
			s.tokens.remember(key, name, now)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, name)))
	})
}
