package metrics

import (
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// temporalBuckets are the SDK's latency histograms' buckets, in seconds:
// schedule-to-start is milliseconds when workers keep up and minutes when
// they do not, and the alert on its p99 needs resolution around a second.
var temporalBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// sanitize keeps metric and label names to what Prometheus accepts, like
// the SDK's PrometheusSanitizeOptions, but leaves label values readable:
// the SDK's would turn the task queue lojal-journeys-email into
// lojal_journeys_email, which no query written from the queue's name
// finds.
var sanitize = tally.SanitizeOptions{
	NameCharacters:       sdktally.PrometheusSanitizeOptions.NameCharacters,
	KeyCharacters:        sdktally.PrometheusSanitizeOptions.KeyCharacters,
	ValueCharacters:      tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: []rune{'_', '-', '.', ':', '/', '@'}},
	ReplacementCharacter: tally.DefaultReplacementCharacter,
}

// Temporal returns a metrics handler for the Temporal SDK's client and
// workers that exports the SDK's metrics on lojal's registry, beside
// lojal's own, under the SDK's standard Prometheus names (the ones
// Temporal's SDK dashboards query: temporal_request_total,
// temporal_activity_schedule_to_start_latency_seconds_bucket, ...).
//
// It goes through tally, the SDK's own Prometheus path, rather than
// OpenTelemetry's Prometheus exporter: tally registers on the given
// registry directly, keeps the SDK's names as they are documented, and
// adds no scope or target labels. Latencies are histograms, not
// summaries, so that quantiles can be taken across workers.
//
// Close the returned Closer on shutdown: it stops the reporting loop
// (the scope reports once a second). A nil *Metrics gives the SDK's
// no-op handler.
func (m *Metrics) Temporal(log *slog.Logger) (client.MetricsHandler, io.Closer) {
	if m == nil {
		return client.MetricsNopHandler, io.NopCloser(nil)
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              m.reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: temporalBuckets,
		// A metric the SDK reports with another set of labels than the
		// first time cannot be registered again; that costs the one
		// series, never the process.
		OnRegisterError: func(err error) { log.Warn("temporal sdk metric not exported", "err", err) },
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:         reporter,
		Separator:              tallyprom.DefaultSeparator,
		SanitizeOptions:        &sanitize,
		OmitCardinalityMetrics: true,
	}, time.Second)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer
}

// Names lists the metric families registered so far: lojal's own, the Go
// and process collectors', and the SDK's that it has reported (they are
// registered as the SDK first reports them). Checks that a dashboard or
// an alert rule names metrics that exist use it.
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		m.reg.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if n := descName(d); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// descFQName finds a metric's name in its description: client_golang
// keeps it unexported and prints it as fqName: "name".
var descFQName = regexp.MustCompile(`fqName: "([^"]+)"`)

func descName(d *prometheus.Desc) string {
	if m := descFQName.FindStringSubmatch(d.String()); m != nil {
		return m[1]
	}
	return ""
}
