package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/dispatch"
	"github.com/lojal/lojal/internal/httpserver"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/retention"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

func runWorker(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, _, err := loadConfig("worker", args, stderr)
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
	for name, r := range map[string]float64{"LOJAL_EMAIL_RATE": cfg.EmailRate, "LOJAL_PUSH_RATE": cfg.PushRate} {
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			return fmt.Errorf("%s is %v: want messages a second, 0 for no limit", name, r)
		}
	}
	if cfg.SMTPURL == "" {
		return errors.New("no SMTP server: set SMTP_URL (or --smtp-url)")
	}
	signer, err := newSigner(cfg)
	if err != nil {
		return err
	}
	obs, err := observe(ctx, "lojal-worker", log)
	if err != nil {
		return err
	}
	defer obs.Close()
	// The client connects on first use: a worker that starts while
	// Temporal is away waits for it (startWorkers) instead of exiting.
	svc, err := connect(ctx, cfg, log, client.NewLazyClient, obs.client)
	if err != nil {
		return err
	}
	defer svc.Close()
	st, cat, tc := svc.st, svc.cat, svc.tc
	if err := checkRetention(cfg, *cat.Current().Rules); err != nil {
		return err
	}
	mux, email, err := senders(cfg, log)
	if err != nil {
		return err
	}
	defer email.Close()
	if w := unsignedMailWarning(cfg); w != "" {
		log.Warn(w)
	}
	verp, err := newVERP(cfg)
	if err != nil {
		return err
	}
	m := obs.metrics
	var waiting temporalWait
	servers := workerServers(cfg, st, m, waiting.err)
	for _, srv := range servers {
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "addr", srv.Addr, "err", err)
			}
		}()
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(shutdownCtx)
		}
	}()
	if cfg.BounceSMTPAddr != "" {
		l, err := net.Listen("tcp", cfg.BounceSMTPAddr)
		if err != nil {
			return fmt.Errorf("bounce intake: %w", err)
		}
		defer l.Close()
		// The intake also takes unsubscribes mailed to List-Unsubscribe.
		intake := &bounce.Intake{Store: st, VERP: verp, Log: log, MessageDomain: email.Domain(),
			Topics: func() []string { return cat.Current().Topics() }, Metrics: m}
		// And replies, at their own reply+<token> addresses.
		d := &ingest.Dispatcher{Store: st, Temporal: tc, Catalog: cat, Log: log, Metrics: m, ReorderWindow: cfg.ReorderWindow}
		if replies := newReplies(st, verp, cat, tc, d, email.Domain(), log, m); replies != nil {
			intake.Replies = replies
		}
		opts := bounce.SMTPOptions{MaxConns: cfg.BounceSMTPConns, SessionTimeout: cfg.BounceSMTPSession}
		go func() {
			m.BounceIntake(true)
			if err := intake.ServeSMTP(l, opts); err != nil {
				log.Error("bounce intake stopped", "err", err)
			}
			m.BounceIntake(false)
		}()
		log.Info("bounce intake listening", "addr", l.Addr().String())
	}
	deps := workerDeps{Store: st, Catalog: cat, Sender: mux, Links: signer, VERP: verp,
		Domain: email.Domain(), Log: log, StopTimeout: cfg.ShutdownTimeout, Metrics: m, SendTimeout: cfg.SendTimeout,
		ReorderWindow: cfg.ReorderWindow, Rates: map[string]float64{"email": cfg.EmailRate, "push": cfg.PushRate}, BulkRate: cfg.BulkRate,
		ActivitySlots: cfg.ActivitySlots, Retention: retentionOf(cfg),
		Webhooks: channel.NewWebhook(egress(cfg), 15*time.Second), OnFatal: waiting.stopped}
	w, err := startWorkers(ctx, func() workflows.Workers { return newWorker(tc, deps) }, &waiting, log, cfg.TemporalAddress)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("shutting down before Temporal answered")
			return nil
		}
		return err
	}
	log.Info("worker started", "task_queue", workflows.TaskQueue, "journeys", len(cat.Current().Journeys), "temporal", cfg.TemporalAddress,
		"email_rate", cfg.EmailRate, "push_rate", cfg.PushRate)
	go keepSchedules(ctx, tc, cat, log)
	select {
	case <-ctx.Done():
	case <-waiting.waitHalted():
		// Kubernetes restarts a process that exits; one whose workers
		// the SDK stopped would stay up polling nothing.
		w.Stop()
		return fmt.Errorf("exiting so the process is restarted (check TEMPORAL_ADDRESS, LOJAL_TEMPORAL_NAMESPACE and the server): %w", waiting.err())
	}
	log.Info("shutting down: draining in-flight activities", "timeout", cfg.ShutdownTimeout)
	w.Stop()
	return nil
}

// Waiting for Temporal at start: the first retry after a second, doubling
// to at most startRetryMax, so a worker comes up within seconds of
// Temporal doing so.
const (
	startRetryFirst = time.Second
	startRetryMax   = 5 * time.Second
)

// temporalWait is what a worker that has not started yet waits for: the
// last error starting it met, for its readiness check.
type temporalWait struct {
	mu      sync.Mutex
	started bool
	last    error
	// stop is why the SDK stopped a worker for good; halt is closed then.
	stop error
	halt chan struct{}
}

// stopped records that the SDK stopped a worker for good (its
// OnFatalError): readiness fails from then on, and halted is closed.
func (t *temporalWait) stopped(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop != nil {
		return
	}
	t.stop = err
	close(t.halted())
}

// halted is closed once a worker was stopped for good.
func (t *temporalWait) halted() chan struct{} {
	if t.halt == nil {
		t.halt = make(chan struct{})
	}
	return t.halt
}

// waitHalted returns a channel closed once a worker was stopped for good.
func (t *temporalWait) waitHalted() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.halted()
}

func (t *temporalWait) set(started bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.started, t.last = started, err
}

// err says why the worker is not ready, nil once it has started.
func (t *temporalWait) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.stop != nil:
		return fmt.Errorf("temporal: a worker was stopped for good: %w", t.stop)
	case t.started:
		return nil
	case t.last == nil:
		return errors.New("temporal: the workers are starting")
	}
	return fmt.Errorf("temporal: the workers wait for Temporal to answer: %w", t.last)
}

// startWorkers builds and starts the process's workers, and when Temporal
// does not answer (not reachable, a hung frontend, the namespace not
// registered yet) tries again with back-off until it does or ctx ends. A
// worker that exited instead was restarted by Kubernetes with a back-off
// that grows to five minutes, long after Temporal was back. Workers that
// failed to start cannot start again, so each try builds new ones.
func startWorkers(ctx context.Context, build func() workflows.Workers, waiting *temporalWait, log *slog.Logger, addr string) (workflows.Workers, error) {
	wait := startRetryFirst
	for {
		w := build()
		err := w.Start()
		if err == nil {
			waiting.set(true, nil)
			return w, nil
		}
		waiting.set(false, err)
		log.Warn("cannot start the workers: Temporal does not answer; trying again (check TEMPORAL_ADDRESS, LOJAL_TEMPORAL_NAMESPACE and the server)",
			"temporal", addr, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, startRetryMax)
	}
}

// checkRetention refuses, at start-up, a retention shorter than what
// policy.yaml needs remembered (store.Retention.Check).
func checkRetention(cfg Config, rules policy.Rules) error {
	if err := retentionOf(cfg).Check(rules, retention.SettingNames()); err != nil {
		return fmt.Errorf("retention too short for policy.yaml (docs/retention.md):\n%w", err)
	}
	return nil
}

// workerServers are the worker's health server and its metrics server;
// one server when they share an address (the worker's port is not
// public), then /metrics still needs LOJAL_METRICS_TOKEN when it is set.
func workerServers(cfg Config, st *store.Store, m *metrics.Metrics, waiting func() error) []*http.Server {
	health := healthHandler(st, waiting)
	metricsHandler := httpserver.RequireToken(cfg.MetricsToken, m.Handler())
	if cfg.MetricsAddr == "" {
		return []*http.Server{httpserver.New(cfg.HTTPAddr, health, httpserver.Internal)}
	}
	if cfg.MetricsAddr == cfg.HTTPAddr {
		health.Handle("GET /metrics", metricsHandler)
		return []*http.Server{httpserver.New(cfg.HTTPAddr, health, httpserver.Internal)}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	return []*http.Server{httpserver.New(cfg.HTTPAddr, health, httpserver.Internal), httpserver.New(cfg.MetricsAddr, mux, httpserver.Internal)}
}

type workerDeps struct {
	Store       *store.Store
	Catalog     catalog.Source
	Sender      channel.Sender
	Links       *links.Signer
	VERP        *bounce.VERP
	Domain      string
	Log         *slog.Logger
	StopTimeout time.Duration
	Metrics     *metrics.Metrics
	SendTimeout time.Duration
	// ReorderWindow is passed to runs the sweeper starts.
	ReorderWindow time.Duration
	// Rates bound deliveries a second per channel, across all workers.
	Rates map[string]float64
	// BulkRate bounds the bulk events the sweeper routes a second.
	BulkRate float64
	// ActivitySlots is how many activities each task queue runs at once
	// (default 200).
	ActivitySlots int
	// Retention is what the retention job keeps.
	Retention store.Retention
	// Webhooks posts replies and escalations to helpers' webhooks.
	Webhooks *channel.Webhook
	// OnFatal is told when the SDK stops a worker for good (a namespace
	// gone, an argument the server refuses): the process must not go on
	// polling nothing.
	OnFatal func(error)
}

// newWorker builds the process's workers: the journey worker and one send
// worker per channel, sharing one Workflows value (its compiled
// definition cache) and one Activities value.
func newWorker(tc client.Client, d workerDeps) workflows.Workers {
	if d.ActivitySlots <= 0 {
		d.ActivitySlots = 200
	}
	ws := workflows.NewWorkers(tc, workflows.TaskQueue, &activities.Activities{Store: d.Store, Catalog: d.Catalog, Sender: d.Sender,
		Links: d.Links, Log: d.Log, MessageDomain: d.Domain, VERP: d.VERP, Metrics: d.Metrics, Webhooks: d.Webhooks}, workflows.WorkerOptions{
		Worker: worker.Options{WorkerStopTimeout: d.StopTimeout, MaxConcurrentActivityExecutionSize: d.ActivitySlots,
			OnFatalError: d.OnFatal},
		Rates:     d.Rates,
		Workflows: []workflows.Option{workflows.WithSendTimeout(d.SendTimeout)},
	})
	sweeper := &dispatch.Sweeper{Router: &dispatch.Router{Store: d.Store, Temporal: tc, Catalog: d.Catalog, Log: d.Log,
		Metrics: d.Metrics, ReorderWindow: d.ReorderWindow}, Options: dispatch.SweepOptions{BulkRate: d.BulkRate}}
	sweeper.Register(ws[0])
	job := &retention.Job{Store: d.Store, Retention: d.Retention, Rules: func() policy.Rules { return *d.Catalog.Current().Rules }, Log: d.Log}
	job.Register(ws[0])
	return ws
}

func healthHandler(st *store.Store, waiting func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := waiting(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("migrate", args, stderr)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("no database: set DATABASE_URL (or --database-url)")
	}
	applied, err := store.Migrate(ctx, store.Config{URL: cfg.DatabaseURL})
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database schema is up to date")
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v\n", applied)
	return nil
}

// keepSchedules starts the scheduler workflow of every scheduled journey,
// now and after each deployment.
func keepSchedules(ctx context.Context, tc client.Client, cat catalog.Source, log *slog.Logger) {
	for {
		if err := dispatch.EnsureSweeper(ctx, tc, ""); err != nil && ctx.Err() == nil {
			log.Warn("event sweeper", "err", err)
		}
		if err := ingest.EnsureSchedules(ctx, tc, cat.Current(), ""); err != nil && ctx.Err() == nil {
			log.Warn("scheduled journeys", "err", err)
		}
		if err := retention.EnsureSchedule(ctx, tc, ""); err != nil && ctx.Err() == nil {
			log.Warn("retention schedule", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}
