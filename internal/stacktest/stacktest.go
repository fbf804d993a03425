// Package stacktest runs lojal end to end for tests and benchmarks: real
// Postgres (pgtest), the real Temporal dev server, the real SMTP catcher,
// and a real worker on a task queue of its own, so tests run in parallel
// against one server without taking each other's tasks.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/devstack"
	"github.com/lojal/lojal/internal/ingest"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/mailcatch"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/workflows"
)

var (
	once     sync.Once
	temporal *devstack.Temporal
	tErr     error
)

// Main runs the tests, then stops the shared servers.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests, stops the shared servers and returns the exit code,
// for a TestMain with more to clean up.
func Run(m *testing.M) int {
	code := m.Run()
	if temporal != nil {
		temporal.Stop()
	}
	pgtest.Stop()
	return code
}

// TemporalAddress returns the shared dev server's address (TEST_TEMPORAL_ADDRESS
// when set), starting it on first use.
func TemporalAddress(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv("TEST_TEMPORAL_ADDRESS"); addr != "" {
		return addr
	}
	once.Do(func() {
		temporal, tErr = devstack.StartTemporal(context.Background(), slog.New(slog.DiscardHandler), devstack.TemporalOptions{})
	})
	if tErr != nil {
		tb.Fatalf("start temporal: %v", tErr)
	}
	return temporal.Address
}

// Stack is one test's lojal.
type Stack struct {
	Store      *store.Store
	Client     client.Client
	Catcher    *mailcatch.Server
	Catalog    *catalog.Catalog
	Dispatcher *ingest.Dispatcher
	Links      *links.Signer
	TaskQueue  string
	Worker     workflows.Workers
	Email      *channel.Email
	Log        *slog.Logger
	// Metrics is Options.Metrics (nil records nothing).
	Metrics *metrics.Metrics
}

// Options adjust a stack.
type Options struct {
	// Journeys is the journeys directory (default ../../journeys).
	Journeys string
	// RejectRecipient makes the SMTP catcher bounce addresses.
	RejectRecipient func(string) bool
	// NoWorker leaves the worker to the test (fault tests start and kill
	// their own).
	NoWorker bool
	// Metrics, when set, records lojal's metrics and the Temporal SDK's
	// (of the stack's client and workers), as lojal worker does.
	Metrics *metrics.Metrics
	// Interceptors go on the stack's Temporal client, and so on its
	// workers (tracing).
	Interceptors []interceptor.ClientInterceptor
	// Log, when set, is the stack's logger (default: warnings to the
	// test's log).
	Log *slog.Logger
}

// New starts a stack for one test; everything stops when the test ends.
func New(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	ctx := context.Background()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Journeys == "" {
		opts.Journeys = "../../journeys"
	}
	cat, err := catalog.Load(os.DirFS(opts.Journeys), opts.Journeys)
	if err != nil {
		tb.Fatalf("journeys: %v", err)
	}
	s := &Stack{Catalog: cat, Log: log, Store: pgtest.Store(tb)}
	s.Catcher, err = mailcatch.Start(log, mailcatch.Options{RejectRecipient: opts.RejectRecipient})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Catcher.Close() })
	sdkMetrics, closeMetrics := opts.Metrics.Temporal(log)
	tb.Cleanup(func() { _ = closeMetrics.Close() })
	s.Metrics = opts.Metrics
	s.Client, err = client.Dial(client.Options{HostPort: TemporalAddress(tb), Logger: tlog.NewStructuredLogger(log),
		MetricsHandler: sdkMetrics, Interceptors: opts.Interceptors})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Client.Close)
	var b [6]byte
	_, _ = rand.Read(b[:])
	s.TaskQueue = "test-" + hex.EncodeToString(b[:])
	s.Email, err = channel.NewEmail(channel.EmailConfig{URL: "smtp://" + s.Catcher.Addr, From: "lojal <hello@lojal.test>", Timeout: 10 * time.Second}, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Email.Close)
	s.Links, err = links.NewSigner([]byte("test-link-key-0123456789abcdef0123"), "http://lojal.test", 0)
	if err != nil {
		tb.Fatal(err)
	}
	s.Dispatcher = &ingest.Dispatcher{Store: s.Store, Temporal: s.Client, Catalog: cat, Log: log, TaskQueue: s.TaskQueue, Metrics: s.Metrics}
	if !opts.NoWorker {
		s.Worker = s.NewWorker()
		if err := s.Worker.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(s.Worker.Stop)
	}
	_ = ctx
	return s
}

// NewWorker builds (but does not start) the workers for the stack's
// queue and its send queues.
func (s *Stack) NewWorker() workflows.Workers {
	return workflows.NewWorkers(s.Client, s.TaskQueue, &activities.Activities{Store: s.Store, Catalog: s.Catalog,
		Sender: channel.Mux{"email": s.Email}, Links: s.Links, Log: s.Log, MessageDomain: s.Email.Domain(), Metrics: s.Metrics},
		workflows.WorkerOptions{Worker: worker.Options{WorkerStopTimeout: 5 * time.Second}})
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

// CopyDir copies a directory tree (a journeys directory a test edits).
func CopyDir(tb testing.TB, from, to string) {
	tb.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
}
