package bounce

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/metrics"
)

// TestReportsAreCounted: every report is counted by the way it came and
// what became of it, so that an alert can tell when bounces stop coming.
func TestReportsAreCounted(t *testing.T) {
	m := metrics.New()
	in := &Intake{Log: slog.New(slog.DiscardHandler), Metrics: m}
	_, err := in.Apply(context.Background(), strings.NewReader("Subject: out of office\r\n\r\nI am away.\r\n"), "bounces@lojal.example")
	if err == nil {
		t.Fatal("an auto-reply was taken for a report")
	}
	_, _ = in.Apply(context.Background(), strings.NewReader("Subject: hello\r\n\r\nhi\r\n"))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`lojal_bounce_reports_total{result="not_a_report",via="smtp"} 1`, `lojal_bounce_reports_total{result="not_a_report",via="webhook"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(rec.Body.String(), "lojal_bounce_intake_up") {
		t.Error("a process without an intake exports lojal_bounce_intake_up")
	}
	m.BounceIntake(true)
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "lojal_bounce_intake_up 1") {
		t.Error("lojal_bounce_intake_up is not 1 while the intake serves")
	}
}
