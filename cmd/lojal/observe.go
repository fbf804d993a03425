package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/telemetry"
)

// observability is what a long-running process (worker, api) reports:
// lojal's metrics and the Temporal SDK's on one registry, served on
// /metrics, and traces when the standard OTEL_* environment asks for them
// (docs/operations.md, "Traces").
type observability struct {
	metrics  *metrics.Metrics
	tracing  *telemetry.Tracing
	sdk      client.MetricsHandler
	closeSDK io.Closer
	icpt     interceptor.ClientInterceptor
}

// observe sets a process's metrics and tracing up; service names it in
// traces unless OTEL_SERVICE_NAME does.
func observe(ctx context.Context, service string, log *slog.Logger) (*observability, error) {
	tr, err := telemetry.New(ctx, service, os.Getenv, os.Stdout)
	if err != nil {
		return nil, err
	}
	icpt, err := tr.Interceptor()
	if err != nil {
		_ = tr.Shutdown(ctx)
		return nil, err
	}
	if tr.Enabled() {
		// The exporter's failures (a collector that is down) would go to
		// the standard library's log otherwise.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("traces not exported", "err", err) }))
		log.Info("tracing", "exporter", tr.Exporter())
	}
	m := metrics.New()
	sdk, closeSDK := m.Temporal(log.With("component", "temporal"))
	return &observability{metrics: m, tracing: tr, sdk: sdk, closeSDK: closeSDK, icpt: icpt}, nil
}

// client gives a Temporal client (and the workers built from it) the
// SDK's metrics and, when tracing, the tracing interceptor.
func (o *observability) client(co *client.Options) {
	co.MetricsHandler = o.sdk
	if o.icpt != nil {
		co.Interceptors = append(co.Interceptors, o.icpt)
	}
}

// Close exports the spans still buffered (for a few seconds at most) and
// stops the SDK's metrics.
func (o *observability) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.tracing.Shutdown(ctx)
	_ = o.closeSDK.Close()
}
