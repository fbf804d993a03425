package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/httpserver"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/report"
	"github.com/lojal/lojal/internal/store"
)

// runAPI serves the HTTP API and preference centre, and dispatches
// accepted events to journeys (one API process at a time holds the
// dispatcher lock).
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(ctx, args[1:], stdout, stderr)
	}
	cfg, _, err := loadConfig("api", args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if err := checkPublicURL(cfg); err != nil {
		return err
	}
	signer, err := newSigner(cfg)
	if err != nil {
		return err
	}
	verp, err := newVERP(cfg)
	if err != nil {
		return err
	}
	ret := retentionOf(cfg)
	obs, err := observe(ctx, "lojal-api", log)
	if err != nil {
		return err
	}
	defer obs.Close()
	// The API stores events whether Temporal answers or not (the
	// sweeper routes what it could not): it starts and serves while
	// Temporal is away, connecting on its first call.
	svc, err := connect(ctx, cfg, log, client.NewLazyClient, obs.client)
	if err != nil {
		return err
	}
	defer svc.Close()
	st, cat := svc.st, svc.cat
	m := obs.metrics
	// Events are routed in the request path, by whichever replica took
	// them; the worker's sweeper routes what a replica left behind.
	d := &ingest.Dispatcher{Store: st, Temporal: svc.tc, Catalog: cat, Log: log, Metrics: m, ReorderWindow: cfg.ReorderWindow}
	srv := &api.Server{Store: st, Dispatcher: d, Catalog: cat, Links: signer, Metrics: m, Log: log,
		Bounces: &bounce.Intake{Store: st, VERP: verp, Log: log, Metrics: m}, PushEgress: egress(cfg),
		// Free text written with an answer goes to the helper like a reply.
		Replies: newReplies(st, verp, cat, svc.tc, d, "", log, m), Retention: ret}
	hs, ms, err := apiServers(cfg, obs.tracing.Handler(srv.Handler()), m)
	if err != nil {
		return err
	}
	go reportGauges(ctx, st, m, log)
	errc := make(chan error, 2)
	go func() { errc <- hs.ListenAndServe() }()
	if ms != nil {
		go func() { errc <- ms.ListenAndServe() }()
		log.Info("metrics listening", "addr", ms.Addr, "token", cfg.MetricsToken != "")
	}
	log.Info("api listening", "addr", cfg.HTTPAddr, "journeys", len(cat.Current().Journeys))
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if ms != nil {
		_ = ms.Shutdown(sctx)
	}
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api shutdown: %w", err)
	}
	return nil
}

// apiServers returns the API's server and, on a listener of its own, the
// metrics server (nil when metrics are off or share the API's port). The
// API port is public, so /metrics is served there only behind a token.
func apiServers(cfg Config, api http.Handler, m *metrics.Metrics) (*http.Server, *http.Server, error) {
	metricsHandler := httpserver.RequireToken(cfg.MetricsToken, m.Handler())
	switch {
	case cfg.MetricsAddr == "":
		return httpserver.New(cfg.HTTPAddr, api, httpserver.API), nil, nil
	case cfg.MetricsAddr == cfg.HTTPAddr:
		if cfg.MetricsToken == "" {
			return nil, nil, errors.New("LOJAL_METRICS_ADDR is the API's public address: set LOJAL_METRICS_TOKEN, or give metrics an address of their own")
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		mux.Handle("/", api)
		return httpserver.New(cfg.HTTPAddr, mux, httpserver.API), nil, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	return httpserver.New(cfg.HTTPAddr, api, httpserver.API), httpserver.New(cfg.MetricsAddr, mux, httpserver.Internal), nil
}

// gaugeStore is what reportGauges reads.
type gaugeStore interface {
	SpamSince(context.Context, time.Time) (store.Spam, error)
	PartitionedUntil(context.Context, time.Time) (time.Time, error)
}

// reportGauges keeps the spam rate over the last 24 hours current (every
// minute), with a log line when it crosses a threshold, and how far ahead
// the tables are partitioned. (The event path's gauges come from the
// sweeper, in the worker.)
func reportGauges(ctx context.Context, st gaugeStore, m *metrics.Metrics, log *slog.Logger) {
	level := "ok"
	for ctx.Err() == nil {
		if l, err := spamGauges(ctx, st, m, time.Now()); err == nil && l != level {
			log.Warn("spam rate changed level", "from", level, "to", l, "warning_per_1000", report.SpamWarning, "alarm_per_1000", report.SpamAlarm)
			level = l
		}
		if err := partitionGauge(ctx, st, m, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("partitions ahead", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
	}
}

// spamGauges sets the spam-rate gauges from the 24 hours before now and
// returns the level.
func spamGauges(ctx context.Context, st gaugeStore, m *metrics.Metrics, now time.Time) (string, error) {
	sp, err := st.SpamSince(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return "", err
	}
	level := report.SpamLevel(sp.PerThousand())
	m.Spam(sp.PerThousand(), level, report.SpamWarning, report.SpamAlarm)
	return level, nil
}

// partitionGauge sets lojal_partitions_ahead_days from now.
func partitionGauge(ctx context.Context, st gaugeStore, m *metrics.Metrics, now time.Time) error {
	until, err := st.PartitionedUntil(ctx, now)
	if err != nil {
		return err
	}
	m.PartitionsAhead.Set(until.Sub(now).Hours() / 24)
	return nil
}

// runToken creates and revokes API bearer tokens. A token is shown once;
// only its hash is stored.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "revoke") {
		return exitError{code: 2, msg: "usage: lojal api token create|revoke --name NAME"}
	}
	cfg := defaultConfig()
	fs := newFlagSet("api token "+args[0], stderr)
	name := fs.String("name", "", "what the token is for (a client, a system)")
	if err := loadInto(fs, args[1:], &cfg); err != nil {
		return err
	}
	if *name == "" {
		return exitError{code: 2, msg: "usage: lojal api token " + args[0] + " --name NAME"}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "revoke" {
		n, err := st.RevokeToken(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d token(s) named %s (API processes stop accepting them within a minute)\n", n, *name)
		return nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	secret := "lj_" + base64.RawURLEncoding.EncodeToString(b[:])
	if _, err := st.CreateToken(ctx, *name, secret); err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	fmt.Fprintln(stderr, "store this token now: it is not shown again (only its hash is kept)")
	return nil
}
