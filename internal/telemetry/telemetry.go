// Package telemetry traces lojal's work with OpenTelemetry, so that one
// customer's message can be followed from the API request that caused it,
// through storage, routing (the run's start), the journey workflow, the
// policy decision, to the SMTP or push server that took it.
//
// Tracing is off unless the standard OTEL_* environment asks for it (New),
// and costs nothing then: the provider is a no-op, the HTTP middleware and
// the Temporal interceptor are not installed, and Start and the database
// tracer make spans only under a span that records.
//
// Spans below the entry points take their tracer from the span in the
// context (Start), so the packages that make them need no tracer handed
// down and no global: work that no trace asked for makes no spans.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Scope names lojal's instrumentation in the spans it makes.
const Scope = "github.com/lojal/lojal"

// Tracing is one process's tracing: the provider spans are made with and
// the propagator that carries trace context across HTTP and Temporal.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	// shutdown flushes and stops the exporter; nil when tracing is off
	// or the provider belongs to the caller.
	shutdown func(context.Context) error
	exporter string
}

// Off is tracing switched off.
func Off() *Tracing {
	return &Tracing{provider: noop.NewTracerProvider(), propagator: propagator()}
}

// WithProvider traces to a provider the caller owns and shuts down (tests
// give one with an in-process exporter).
func WithProvider(tp trace.TracerProvider) *Tracing {
	return &Tracing{provider: tp, propagator: propagator(), exporter: "caller's"}
}

// propagator is W3C Trace Context and Baggage, the one every Temporal SDK
// puts in workflow and activity headers and most HTTP clients send.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.exporter != "" }

// Exporter names where spans go ("otlp http/protobuf", "otlp grpc",
// "console"), or "" when tracing is off.
func (t *Tracing) Exporter() string { return t.exporter }

// Provider is the tracer provider (a no-op one when tracing is off).
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Shutdown exports what is buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// New sets tracing up from the standard OpenTelemetry environment
// (getenv is os.Getenv outside tests):
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off.
//   - OTEL_TRACES_EXPORTER=otlp, or unset with OTEL_EXPORTER_OTLP_ENDPOINT
//     or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: OTLP, over
//     OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL
//     (http/protobuf, the default, or grpc). The exporter reads its
//     endpoint, headers, timeout, compression and certificates from the
//     OTEL_EXPORTER_OTLP_* variables itself.
//   - OTEL_TRACES_EXPORTER=console: spans as JSON on console.
//   - nothing set: off.
//
// The resource is service.name=service unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise. The SDK reads the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; parent-based, always on
// by default) and the batching (OTEL_BSP_*) itself.
func New(ctx context.Context, service string, getenv func(string) string, console io.Writer) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Off(), nil
	}
	kind := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if kind == "" && (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		kind = "otlp"
	}
	var (
		exp  sdktrace.SpanExporter
		name string
		err  error
	)
	switch kind {
	case "", "none":
		return Off(), nil
	case "otlp":
		protocol := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
		if protocol == "" {
			protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
		}
		switch protocol {
		case "", "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
			name = "otlp http/protobuf"
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
			name = "otlp grpc"
		default:
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: lojal exports traces over http/protobuf (the default) or grpc", protocol)
		}
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		name = "console"
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: lojal exports traces with otlp or console; none (or leaving it unset) turns tracing off", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter %s: %w", name, err)
	}
	attrs, err := resourceAttributes(service, getenv)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{provider: tp, propagator: propagator(), shutdown: tp.Shutdown, exporter: name}, nil
}

// resourceAttributes describes the process: OTEL_RESOURCE_ATTRIBUTES
// (key=value,... with values percent-encoded), with service.name from
// OTEL_SERVICE_NAME, else from those attributes, else service.
func resourceAttributes(service string, getenv func(string) string) ([]attribute.KeyValue, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	for _, kv := range strings.Split(getenv("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if !ok || strings.TrimSpace(k) == "" || err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value (values percent-encoded), as in service.namespace=crm,deployment.environment.name=prod", kv)
		}
		attrs = append(attrs, attribute.String(strings.TrimSpace(k), val))
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		attrs = append(attrs, attribute.String("service.name", name))
	}
	// Later attributes win: resource.WithAttributes keeps the last of a key.
	return attrs, nil
}

// Interceptor is Temporal's OpenTelemetry tracing interceptor: on the
// client it puts the caller's span in the headers of StartWorkflow,
// SignalWithStartWorkflow and signals; on workers (a client's
// interceptors are every worker's built from it) it continues the trace
// in RunWorkflow, StartActivity and RunActivity spans. Nil when tracing
// is off.
func (t *Tracing) Interceptor() (interceptor.ClientInterceptor, error) {
	if !t.Enabled() {
		return nil, nil
	}
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            t.provider.Tracer("temporal-sdk-go"),
		TextMapPropagator: t.propagator,
	})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	return i, nil
}

// Handler traces HTTP requests: one server span a request, named by its
// route pattern ("POST /v1/events"), continuing a trace the caller sent
// in traceparent. Paths are not recorded: they hold customer ids and the
// signed tokens of preference links.
func (t *Tracing) Handler(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	tracer := t.provider.Tracer(Scope)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(sw, r)
		// The mux sets the pattern it matched on the request it was given.
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			_, route, _ := strings.Cut(r.Pattern, " ")
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Start starts a span under the one in ctx, with that span's provider; it
// makes none (returning ctx and a no-op span) when no span in ctx
// records, so code that runs outside any trace pays nothing.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends a span from Start, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Detach returns ctx without its span, for long-running work (the
// sweeper's polling) whose every query would otherwise hang under one
// span for minutes. Linked starts a trace of its own for a piece of that
// work that is worth one.
func Detach(ctx context.Context) context.Context {
	return trace.ContextWithSpanContext(context.WithValue(ctx, originKey{}, trace.SpanFromContext(ctx)), trace.SpanContext{})
}

type originKey struct{}

// Linked starts name as the root of a new trace, linked to the span ctx
// was detached from (Detach), with that span's provider. It makes none
// when ctx was not detached from a span that records.
func Linked(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	origin, _ := ctx.Value(originKey{}).(trace.Span)
	if origin == nil || !origin.IsRecording() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return origin.TracerProvider().Tracer(Scope).Start(ctx, name, trace.WithNewRoot(),
		trace.WithLinks(trace.Link{SpanContext: origin.SpanContext()}), trace.WithAttributes(attrs...))
}
