package metrics

import "github.com/prometheus/client_golang/prometheus"

// operations are metrics the alert rules in deploy/prometheus need and
// lojal's others do not give: whether the event path's gauges are
// current, and whether bounces come in.
type operations struct {
	// DispatchStatsAt is when this process last set the event path's
	// gauges. The sweeper sets them, and Temporal runs it on one worker
	// after another (a minute each): the gauges of a worker that has not
	// swept for a while are stale, and queries keep the fresh ones.
	DispatchStatsAt prometheus.Gauge
	BounceReports   *prometheus.CounterVec
	// BounceIntakeUp has no labels, yet is a vector: a process without
	// an intake (the API, a worker without LOJAL_BOUNCE_SMTP_ADDR) exports
	// no series rather than a 0 that reads as down.
	BounceIntakeUp *prometheus.GaugeVec
}

// initOperations registers the operations metrics and exports the series
// alert rules take increase() of from 0: a counter series that first
// appears at 1 has no increase Prometheus can see, and the first dead
// letter or uncertain delivery would page no one.
func (m *Metrics) initOperations(reg *prometheus.Registry) {
	m.operations = newOperations(reg)
	m.RouteFailures.WithLabelValues("dead_letter")
	m.RouteFailures.WithLabelValues("retry")
	for _, ch := range []string{"email", "push"} {
		for _, cause := range []string{"no_reply", "timeout", "worker_lost"} {
			m.UncertainTotal.WithLabelValues(ch, cause)
		}
	}
}

func newOperations(reg *prometheus.Registry) operations {
	o := operations{
		DispatchStatsAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_events_stats_timestamp_seconds",
			Help: "When this process last set lojal_events_pending, lojal_events_oldest_pending_seconds and lojal_events_dead_letters " +
				"(unix time): the sweeper sets them on the worker that runs it, so the values of a worker that has not for a minute are stale."}),
		BounceReports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_bounce_reports_total",
			Help: "Bounce and complaint reports received, by way (smtp: the inbound intake; webhook: POST /v1/bounces) and result " +
				"(applied, no_match, not_a_report, error)."}, []string{"via", "result"}),
		BounceIntakeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lojal_bounce_intake_up",
			Help: "1 while this worker's inbound SMTP bounce intake (LOJAL_BOUNCE_SMTP_ADDR) serves, 0 once it has stopped; absent when not configured."}, nil),
	}
	reg.MustRegister(o.DispatchStatsAt, o.BounceReports, o.BounceIntakeUp)
	return o
}

// BounceReport counts a report received through via (smtp or webhook)
// with its result.
func (m *Metrics) BounceReport(via, result string) {
	if m == nil {
		return
	}
	m.BounceReports.WithLabelValues(via, result).Inc()
}

// BounceIntake records whether the inbound bounce intake serves.
func (m *Metrics) BounceIntake(up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.BounceIntakeUp.WithLabelValues().Set(v)
}
