package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUncertainCause(t *testing.T) {
	for reason, want := range map[string]string{
		"no reply after the end of data: EOF":                                            "no_reply",
		"no reply after the end of data: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout": "timeout",
		"the attempt that made the request stopped before the answer":                    "worker_lost",
		"handed over; awaiting the server's reply to the end of data":                    "worker_lost",
		"push to x: no answer after the request was sent: context deadline exceeded":     "timeout",
	} {
		if got := UncertainCause(reason); got != want {
			t.Errorf("UncertainCause(%q) = %s, want %s", reason, got, want)
		}
	}
}

func TestUncertainIsExported(t *testing.T) {
	m := New()
	m.Uncertain("email", "no reply after the end of data: EOF")
	var nilM *Metrics
	nilM.Uncertain("email", "x") // a nil *Metrics records nothing
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), `lojal_deliveries_uncertain_total{cause="no_reply",channel="email"} 1`) {
		t.Fatalf("metric missing:\n%s", body)
	}
}

func TestNamesListsEveryFamily(t *testing.T) {
	names := New().Names()
	for _, want := range []string{"lojal_events_pending", "lojal_policy_decisions_total", "lojal_spam_complaints_per_1000", "go_goroutines"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s: %v", want, names)
		}
	}
}

// TestTemporalMetricsShareTheRegistry: what the SDK reports through the
// handler is served on lojal's /metrics under the SDK's Prometheus names,
// with latencies as histograms.
func TestTemporalMetricsShareTheRegistry(t *testing.T) {
	m := New()
	h, closer := m.Temporal(slog.New(slog.DiscardHandler))
	h.WithTags(map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.WithTags(map[string]string{"task_queue": "lojal-journeys"}).Timer("temporal_activity_schedule_to_start_latency").Record(1500 * time.Millisecond)
	if err := closer.Close(); err != nil { // flushes what was recorded
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`temporal_request_total{namespace="default",operation="StartWorkflowExecution"} 1`,
		`temporal_activity_schedule_to_start_latency_seconds_bucket{task_queue="lojal-journeys",le="2.5"} 1`,
		`temporal_activity_schedule_to_start_latency_seconds_bucket{task_queue="lojal-journeys",le="1"} 0`,
		`lojal_events_oldest_pending_seconds 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	var nilM *Metrics
	if h, c := nilM.Temporal(nil); h == nil || c.Close() != nil {
		t.Error("a nil *Metrics must give a usable no-op handler")
	}
}

func TestNamesIn(t *testing.T) {
	got := NamesIn(`histogram_quantile(0.99, sum by (le, task_queue) (rate(temporal_activity_schedule_to_start_latency_seconds_bucket{task_queue=~"lojal_x|lojal-journeys.*"}[5m])))
		> 10 and on() increase(lojal_events_dead_letters[10m]) / sum(rate(temporal_request_total[5m])) + lojal_http_request_seconds_count`)
	want := []string{"temporal_activity_schedule_to_start_latency_seconds", "lojal_events_dead_letters", "temporal_request_total", "lojal_http_request_seconds"}
	if !slices.Equal(got, want) {
		t.Fatalf("NamesIn = %v, want %v", got, want)
	}
}

// TestAlertedCountersStartAtZero: the counters alert rules take increase()
// of are exported at 0 before anything happens. Prometheus sees no
// increase in a series whose first sample is already 1, so without the
// zero the first dead letter or uncertain delivery of a process would page
// no one (deploy/prometheus/lojal-alerts.yaml).
func TestAlertedCountersStartAtZero(t *testing.T) {
	rec := httptest.NewRecorder()
	New().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	want := []string{`lojal_event_route_failures_total{result="dead_letter"} 0`, `lojal_event_route_failures_total{result="retry"} 0`}
	for _, ch := range []string{"email", "push"} {
		// Every cause UncertainCause gives.
		for _, reason := range []string{"no reply after the end of data: EOF", "i/o timeout", "the attempt that made the request stopped before the answer"} {
			want = append(want, fmt.Sprintf(`lojal_deliveries_uncertain_total{cause=%q,channel=%q} 0`, UncertainCause(reason), ch))
		}
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics of a fresh process lacks %s", w)
		}
	}
}
