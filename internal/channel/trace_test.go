package channel

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lojal/lojal/internal/render"
)

// TestPushSendIsTraced: inside a trace, each push request is a push.send
// span under the caller's, saying which server it went to (its host
// only) and what the answer proves. A device token or a subscription's
// endpoint path names one customer's device and works as a credential
// for it: it never goes into a span.
func TestPushSendIsTraced(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Idempotency-Key"), "/8") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, parent := tp.Tracer("test").Start(context.Background(), "RunActivity:Deliver")

	p := NewPush(PushConfig{ProviderURL: srv.URL}, slog.New(slog.DiscardHandler))
	const token = "device-token-of-kari-0123456789abcdefghijklmnop"
	rc, err := p.Send(ctx, Envelope{Channel: "push", MessageID: "m-1", Message: render.Message{Title: "Hei", Body: "Kari"},
		Push: []PushSubscription{{ID: 7, Kind: KindHTTP, Endpoint: token}, {ID: 8, Kind: KindHTTP, Endpoint: token + "-old"}}})
	parent.End()
	if err != nil || rc.Delivered != 1 || len(rc.Expired) != 1 {
		t.Fatalf("send: %+v %v", rc, err)
	}

	u, _ := url.Parse(srv.URL)
	var states []string
	for _, s := range exp.GetSpans() {
		if s.Name != "push.send" {
			continue
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("push.send is not a child of the caller's span")
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes {
			attrs[kv.Key] = kv.Value
			if strings.Contains(kv.Value.Emit(), "device-token") {
				t.Errorf("push.send attribute %s = %q carries the device token", kv.Key, kv.Value.Emit())
			}
		}
		if got := attrs["server.address"].AsString(); got != u.Hostname() {
			t.Errorf("server.address = %q, want the provider's host %q", got, u.Hostname())
		}
		if attrs["lojal.message_id"].AsString() != "m-1" {
			t.Errorf("lojal.message_id = %q", attrs["lojal.message_id"].AsString())
		}
		states = append(states, attrs["lojal.delivery"].AsString()+"/"+attrs["http.response.status_code"].Emit())
	}
	if strings.Join(states, " ") != PushSent+"/202 "+PushGone+"/404" {
		t.Errorf("push.send spans (delivery/status): %v, want %s/202 and %s/404", states, PushSent, PushGone)
	}
}

// TestWebPushSpanNamesTheServiceHost: a Web Push endpoint's path is the
// subscription's secret; the span keeps only the push service's host.
func TestWebPushSpanNamesTheServiceHost(t *testing.T) {
	p := &Push{cfg: PushConfig{ProviderURL: "https://push.provider.example/v1/send"}}
	for _, c := range []struct {
		sub  PushSubscription
		want string
	}{
		{PushSubscription{Kind: KindWebPush, Endpoint: "https://fcm.googleapis.com/fcm/send/dXNlci1zZWNyZXQtdG9rZW4"}, "fcm.googleapis.com"},
		{PushSubscription{Kind: KindHTTP, Endpoint: "dXNlci1zZWNyZXQtdG9rZW4"}, "push.provider.example"},
	} {
		if got := p.serverAddress(c.sub); got != c.want {
			t.Errorf("serverAddress(%s %s) = %q, want %q", c.sub.Kind, c.sub.Endpoint, got, c.want)
		}
	}
}
