package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lojal/lojal/internal/telemetry"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestTracingIsOffUnlessTheEnvironmentAsks: the standard OTEL_* variables
// switch tracing on and choose the exporter; nothing set means off.
func TestTracingIsOffUnlessTheEnvironmentAsks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string // exporter, "" for off
		err  string
	}{
		{name: "nothing set", vars: nil, want: ""},
		{name: "endpoint set", vars: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, want: "otlp http/protobuf"},
		{name: "traces endpoint set", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, want: "otlp http/protobuf"},
		{name: "grpc", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, want: "otlp grpc"},
		{name: "traces protocol wins", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: "otlp http/protobuf"},
		{name: "console", vars: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, want: "console"},
		{name: "none wins over an endpoint", vars: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, want: ""},
		{name: "sdk disabled", vars: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, want: ""},
		{name: "unknown exporter", vars: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: `OTEL_TRACES_EXPORTER "zipkin": lojal exports traces with otlp or console`},
		{name: "unknown protocol", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: `OTEL_EXPORTER_OTLP_PROTOCOL "http/json"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := telemetry.New(ctx, "lojal-test", env(tc.vars), &bytes.Buffer{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(ctx)
			if tr.Exporter() != tc.want || tr.Enabled() != (tc.want != "") {
				t.Fatalf("exporter %q (enabled %v), want %q", tr.Exporter(), tr.Enabled(), tc.want)
			}
			i, err := tr.Interceptor()
			if err != nil || (i != nil) != tr.Enabled() {
				t.Fatalf("interceptor %v, %v with tracing enabled=%v", i, err, tr.Enabled())
			}
		})
	}
}

// TestConsoleExporterNamesTheService: OTEL_SERVICE_NAME names the service
// (over OTEL_RESOURCE_ATTRIBUTES), the other attributes describe it, and
// spans reach the exporter by Shutdown.
func TestConsoleExporterNamesTheService(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	tr, err := telemetry.New(ctx, "lojal-worker", env(map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "lojal-worker-eu",
		"OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,deployment.environment.name=prod%20eu"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("test").Start(ctx, "a span")
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"a span"`) || !strings.Contains(out.String(), `"lojal-worker-eu"`) ||
		!strings.Contains(out.String(), `"prod eu"`) || strings.Contains(out.String(), "ignored") {
		t.Fatalf("console output lacks the span or the service name:\n%s", out.String())
	}
}

// TestHandlerContinuesTheCallersTrace: a request with a traceparent gets
// a server span in that trace, named by its route pattern, without the
// path (which may hold a signed link's token).
func TestHandlerContinuesTheCallersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := telemetry.WithProvider(tp)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{token}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(tr.Handler(mux))
	defer srv.Close()
	ctx, caller := tp.Tracer("caller").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/p/secret-token-value", nil)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	caller.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the caller's and the server's", len(spans))
	}
	server := spans[0]
	if server.Name != "GET /p/{token}" || server.Parent.SpanID() != caller.SpanContext().SpanID() ||
		server.SpanContext.TraceID() != caller.SpanContext().TraceID() {
		t.Fatalf("server span %q, parent %s, trace %s", server.Name, server.Parent.SpanID(), server.SpanContext.TraceID())
	}
	b, _ := json.Marshal(server.Attributes)
	if strings.Contains(string(b), "secret-token-value") || !strings.Contains(string(b), `"Value":418`) {
		t.Fatalf("attributes %s: want the status and no path", b)
	}
	// Off, the handler is the one given.
	if h := telemetry.Off().Handler(mux); h != http.Handler(mux) {
		t.Fatal("tracing off wraps the handler")
	}
}

// TestLogHandlerAddsTraceIDs: a record logged with a span's context names
// the trace and span; one without names none.
func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	ctx, span := tp.Tracer("test").Start(context.Background(), "work")
	log.InfoContext(ctx, "inside")
	log.Info("outside")
	span.End()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var in, out map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &in)
	_ = json.Unmarshal([]byte(lines[1]), &out)
	if in["trace_id"] != span.SpanContext().TraceID().String() || in["span_id"] != span.SpanContext().SpanID().String() || in["component"] != "test" {
		t.Errorf("inside: %s", lines[0])
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("outside: %s", lines[1])
	}
}

// TestStartMakesNoSpanOutsideATrace: code outside any trace (the sweeper's
// polling, background loops) makes no spans; Linked starts a new trace
// linked to the span work was detached from.
func TestStartMakesNoSpanOutsideATrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	_, span := telemetry.Start(context.Background(), "orphan")
	span.End()
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans outside a trace", n)
	}
	ctx, sweeper := tp.Tracer("test").Start(context.Background(), "RunActivity:DispatchSweep")
	detached := telemetry.Detach(ctx)
	_, idle := telemetry.Start(detached, "polling")
	idle.End()
	_, batch := telemetry.Linked(detached, "dispatch.SweepLane")
	batch.End()
	sweeper.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "dispatch.SweepLane" {
		t.Fatalf("spans %v: want the batch and the sweeper, no polling", spans)
	}
	b := spans[0]
	if b.SpanContext.TraceID() == sweeper.SpanContext().TraceID() || len(b.Links) != 1 || b.Links[0].SpanContext.SpanID() != sweeper.SpanContext().SpanID() {
		t.Fatalf("the batch is not a new trace linked to the sweeper: %+v", b)
	}
}

// TestLogHandlerMasksAddresses: bounces, replies and suppressions logged
// the customer's full email address at info level, one a customer's
// erasure never reaches in a log store. The local part is masked; the
// domain stays, which is what an operator needs (which provider bounced).
func TestLogHandlerMasksAddresses(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("mail_from", "kari.nordmann@example.no")
	log.Info("address suppressed", "address", "kari.nordmann@example.no", "message", "<abc@lojal.example>", "reason", "hard_bounce",
		"rcpt_to", []string{"reply+tok@lojal.example", "ola@example.no"})
	line := buf.String()
	if strings.Contains(line, "kari.nordmann") || !strings.Contains(line, `"address":"k***@example.no"`) || !strings.Contains(line, `"mail_from":"k***@example.no"`) ||
		!strings.Contains(line, `"rcpt_to":["r***@lojal.example","o***@example.no"]`) {
		t.Fatalf("addresses not masked: %s", line)
	}
	if !strings.Contains(line, `"message":"<abc@lojal.example>"`) || !strings.Contains(line, `"reason":"hard_bounce"`) {
		t.Fatalf("other fields changed: %s", line)
	}
}
