package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
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
