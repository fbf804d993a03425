package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/interceptor"

	"github.com/lojal/lojal/internal/api"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/stacktest"
	"github.com/lojal/lojal/internal/telemetry"
	"github.com/lojal/lojal/workflows"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// TestOneEventIsOneTrace follows one event on the real stack (Postgres,
// the Temporal dev server, the SMTP catcher) with an in-process exporter:
// the caller's trace continues through the API request, its storage and
// routing, SignalWithStart, the journey workflow, the policy decision and
// the SMTP conversation, as one tree; and the JSON log lines of that work
// carry its trace and span ids.
func TestOneEventIsOneTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracing := telemetry.WithProvider(tp)
	icpt, err := tracing.Interceptor()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s := stacktest.New(t, stacktest.Options{Journeys: "testdata/journeys", Interceptors: []interceptor.ClientInterceptor{icpt}, Log: log})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const token = "lj_trace-test-token"
	if _, err := s.Store.CreateToken(ctx, "tests", token); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: s.Store, Dispatcher: s.Dispatcher, Catalog: s.Catalog, Links: s.Links, Metrics: metrics.New(), Log: log}
	hs := httptest.NewServer(tracing.Handler(srv.Handler()))
	defer hs.Close()
	c := journey.Customer{ID: "c-trace", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true}, Attributes: map[string]any{"first_name": "Kari", "plan": "home"}}
	if _, err := s.Dispatcher.Customer(ctx, c); err != nil {
		t.Fatal(err)
	}

	// The CRM that sends the event traces too: its traceparent is
	// where lojal's trace hangs.
	crmCtx, crm := tp.Tracer("crm").Start(ctx, "crm: order placed")
	body := `{"id": "e-trace-1", "type": "order.placed", "customer_id": "c-trace", "at": "` + time.Now().UTC().Format(time.RFC3339) +
		`", "data": {"order_id": "o-1", "total": 420.0}}`
	req, _ := http.NewRequestWithContext(crmCtx, "POST", hs.URL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	propagation.TraceContext{}.Inject(crmCtx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	crm.End()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s", resp.Status)
	}
	if _, err := s.Catcher.WaitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The run ends after its one message; its RunWorkflow span ends then.
	if err := s.Client.GetWorkflow(ctx, workflows.WorkflowID("order-thanks", c.ID, "o-1"), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	traceID := crm.SpanContext().TraceID()
	var spans tracetest.SpanStubs
	for {
		spans = exp.GetSpans()
		if find(spans, traceID, "smtp.send") != nil && find(spans, traceID, "RunWorkflow:Journey") != nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the event's trace is incomplete:\n%s", tree(spans, traceID))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each hop's span descends from the one before, down to the server
	// that took the message.
	wantChain := func(leaf string, chain ...string) {
		t.Helper()
		span := find(spans, traceID, leaf)
		if span == nil {
			t.Fatalf("no %s span in the event's trace:\n%s", leaf, tree(spans, traceID))
		}
		ancestors := ancestry(spans, span)
		at := 0
		for _, want := range chain {
			i := slices.Index(ancestors[at:], want)
			if i < 0 {
				t.Fatalf("%s does not descend from %s (in this order: %v); its ancestors are %v\n%s", leaf, want, chain, ancestors,
					tree(spans, traceID))
			}
			at += i + 1
		}
	}
	wantChain("smtp.send", "RunActivity:Deliver", "StartActivity:Deliver", "RunWorkflow:Journey", "StartWorkflow:Journey",
		"dispatch.Route", "POST /v1/events", "crm: order placed")
	wantChain("policy.Decide", "RunActivity:Decide", "StartActivity:Decide", "RunWorkflow:Journey", "StartWorkflow:Journey",
		"dispatch.Route", "POST /v1/events", "crm: order placed")
	// Storage: the request stores the event, routing records the run (in
	// the statement that looks for the latest), and
	// the decision locks and writes the customer's ledger.
	for parent, child := range map[string]string{"POST /v1/events": "db ", "dispatch.Route": "db latest-run-or-record", "policy.Decide": "db batch lock-customer"} {
		if !hasChild(spans, find(spans, traceID, parent), child) {
			t.Errorf("%s has no %q child span:\n%s", parent, child, tree(spans, traceID))
		}
	}
	decide := find(spans, traceID, "policy.Decide")
	if !slices.ContainsFunc(decide.Attributes, func(kv attribute.KeyValue) bool {
		return string(kv.Key) == "lojal.verdict" && kv.Value.AsString() == "allow"
	}) {
		t.Errorf("policy.Decide attributes lack the verdict: %v", decide.Attributes)
	}
	if sp := find(spans, traceID, "smtp.send"); sp.Status.Code != 0 || !slices.ContainsFunc(sp.Attributes, func(kv attribute.KeyValue) bool {
		return string(kv.Key) == "lojal.delivery" && kv.Value.AsString() == "sent"
	}) {
		t.Errorf("smtp.send: status %v, attributes %v", sp.Status, sp.Attributes)
	}

	// The log line of the delivery names the trace and the activity's span.
	deliver := find(spans, traceID, "RunActivity:Deliver")
	found := false
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "message sent" {
			continue
		}
		found = true
		if line["trace_id"] != traceID.String() || line["span_id"] != deliver.SpanContext.SpanID().String() {
			t.Errorf("log line %s: want trace_id %s, span_id %s", sc.Text(), traceID, deliver.SpanContext.SpanID())
		}
	}
	if !found {
		t.Errorf("no \"message sent\" line in the JSON log:\n%s", logs.Bytes())
	}
}

func find(spans tracetest.SpanStubs, id trace.TraceID, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].SpanContext.TraceID() == id && spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func byID(spans tracetest.SpanStubs, id trace.SpanID) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].SpanContext.SpanID() == id {
			return &spans[i]
		}
	}
	return nil
}

// ancestry names a span's ancestors, nearest first.
func ancestry(spans tracetest.SpanStubs, s *tracetest.SpanStub) []string {
	var names []string
	for p := byID(spans, s.Parent.SpanID()); p != nil; p = byID(spans, p.Parent.SpanID()) {
		names = append(names, p.Name)
	}
	return names
}

func hasChild(spans tracetest.SpanStubs, parent *tracetest.SpanStub, prefix string) bool {
	if parent == nil {
		return false
	}
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() && strings.HasPrefix(s.Name, prefix) {
			return true
		}
	}
	return false
}

// tree draws a trace for failure messages.
func tree(spans tracetest.SpanStubs, id trace.TraceID) string {
	var b strings.Builder
	var walk func(parent trace.SpanID, depth int)
	walk = func(parent trace.SpanID, depth int) {
		for _, s := range spans {
			if s.SpanContext.TraceID() == id && s.Parent.SpanID() == parent {
				b.WriteString(strings.Repeat("  ", depth) + s.Name + "\n")
				walk(s.SpanContext.SpanID(), depth+1)
			}
		}
	}
	walk(trace.SpanID{}, 0)
	return b.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
