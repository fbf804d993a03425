// Package metrics defines lojal's Prometheus metrics. Each binary builds
// one Registry in main and hands the parts down; nothing registers
// globally.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector. A nil *Metrics records nothing, so code
// paths that run in tests need no registry.
type Metrics struct {
	reg *prometheus.Registry
	// operations are the metrics alerts need beyond those below
	// (operations.go).
	operations

	Decisions        *prometheus.CounterVec
	DecisionSeconds  prometheus.Histogram
	Messages         *prometheus.CounterVec
	StepSeconds      *prometheus.HistogramVec
	EventsAccepted   *prometheus.CounterVec
	HTTPRequests     *prometheus.CounterVec
	HTTPSeconds      *prometheus.HistogramVec
	DispatchBacklog  *prometheus.GaugeVec
	DispatchLag      prometheus.Gauge
	DeadLetters      prometheus.Gauge
	Routes           *prometheus.CounterVec
	RouteFailures    *prometheus.CounterVec
	RunsReconciled   prometheus.Counter
	Suppressions     *prometheus.CounterVec
	PreferenceCentre *prometheus.CounterVec
	UncertainTotal   *prometheus.CounterVec
	SpamRate         prometheus.Gauge
	SpamLevel        prometheus.Gauge
	SpamThreshold    *prometheus.GaugeVec
	Dialogue         *prometheus.CounterVec
	PartitionsAhead  prometheus.Gauge
}

// New builds and registers the collectors, with Go and process metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_policy_decisions_total",
			Help: "Relationship policy decisions by verdict, reason and channel."}, []string{"decision", "reason", "channel"}),
		DecisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lojal_policy_decision_seconds",
			Help: "Time to take one policy decision with its reservation (lock, read, decide, record).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_messages_total",
			Help: "Messages by channel and delivery status (sent, uncertain, failed, expired, fallback)."}, []string{"channel", "status"}),
		StepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lojal_journey_send_step_seconds",
			Help:    "Journey send step latency: from the step's first ask of the policy to the message being sent (deferrals included).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600}}, []string{"journey"}),
		EventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_events_total",
			Help: "Events received by the API, by outcome (accepted, duplicate, unknown_customer, invalid)."}, []string{"status"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		HTTPSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lojal_http_request_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
		DispatchBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lojal_events_pending",
			Help: "Accepted events not yet routed to journeys, by lane (live, bulk)."}, []string{"lane"}),
		DispatchLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_events_oldest_pending_seconds",
			Help: "How long the oldest live event not yet routed has waited."}),
		DeadLetters: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_events_dead_letters",
			Help: "Events given up on after too many failed routing attempts (lojal events failed)."}),
		Routes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_event_routes_total",
			Help: "What routing did with events, per journey concerned (started, signalled, skipped, parked)."}, []string{"action"}),
		RouteFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_event_route_failures_total",
			Help: "Failed attempts to route an event, by result (retry, dead_letter)."}, []string{"result"}),
		RunsReconciled: prometheus.NewCounter(prometheus.CounterOpts{Name: "lojal_runs_reconciled_total",
			Help: "Journey runs that ended without recording it (failed, terminated) and were closed by the reconciler."}),
		Suppressions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_suppressions_total",
			Help: "Addresses suppressed, by reason."}, []string{"reason"}),
		PreferenceCentre: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_preference_changes_total",
			Help: "Changes made in the preference centre, by kind."}, []string{"kind"}),
		UncertainTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_deliveries_uncertain_total",
			Help: "Messages handed over with no answer: the server may have them; they count as sent and are never resent. By channel and cause."},
			[]string{"channel", "cause"}),
		SpamRate: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_spam_complaints_per_1000",
			Help: "Complaints per 1,000 delivered emails over the last 24 hours (the spam rate Gmail and Yahoo hold bulk senders to; see lojal_spam_complaint_threshold_per_1000)."}),
		SpamLevel: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_spam_complaint_level",
			Help: "Where the spam rate stands: 0 under the warning threshold, 1 at or above it (0.1%), 2 at or above the alarm threshold (0.3%)."}),
		SpamThreshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lojal_spam_complaint_threshold_per_1000",
			Help: "The spam-rate thresholds, in complaints per 1,000 delivered emails: warning (Gmail's 0.1%) and alarm (0.3%)."}, []string{"level"}),
		Dialogue: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lojal_dialogue_total",
			Help: "Replies and answers by what happened (reply, held_for_helper, auto_reply, unmatched, refused, forwarded, answered, escalated, survey_answer, survey_change) and topic."},
			[]string{"what", "topic"}),
		PartitionsAhead: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lojal_partitions_ahead_days",
			Help: "Days every partitioned table (ledger, events, ...) can still take rows before a month with no partition: the retention job keeps it months ahead; near 0, inserts fail."}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Decisions, m.DecisionSeconds, m.Messages, m.StepSeconds, m.EventsAccepted, m.HTTPRequests, m.HTTPSeconds,
		m.DispatchBacklog, m.DispatchLag, m.DeadLetters, m.Routes, m.RouteFailures, m.RunsReconciled,
		m.Suppressions, m.PreferenceCentre, m.UncertainTotal, m.SpamRate, m.SpamLevel, m.SpamThreshold, m.Dialogue, m.PartitionsAhead)
	m.initOperations(reg)
	return m
}

// Spam records the spam rate (complaints per 1,000 delivered emails), its
// level ("ok", "warning" or "alarm") and the thresholds it is held to.
func (m *Metrics) Spam(perThousand float64, level string, warning, alarm float64) {
	if m == nil {
		return
	}
	m.SpamRate.Set(perThousand)
	m.SpamLevel.Set(map[string]float64{"warning": 1, "alarm": 2}[level])
	m.SpamThreshold.WithLabelValues("warning").Set(warning)
	m.SpamThreshold.WithLabelValues("alarm").Set(alarm)
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Decision counts a policy decision and its latency.
func (m *Metrics) Decision(decision, reason, channel string, took time.Duration) {
	if m == nil {
		return
	}
	m.Decisions.WithLabelValues(decision, reason, channel).Inc()
	m.DecisionSeconds.Observe(took.Seconds())
}

// Message counts a delivery outcome.
func (m *Metrics) Message(channel, status string) {
	if m == nil {
		return
	}
	m.Messages.WithLabelValues(channel, status).Inc()
}

// Uncertain counts a delivery that may or may not have reached the server.
// The cause is a small fixed set, so the label stays bounded.
func (m *Metrics) Uncertain(channel, reason string) {
	if m == nil {
		return
	}
	m.UncertainTotal.WithLabelValues(channel, UncertainCause(reason)).Inc()
}

// UncertainCause classifies an uncertain delivery's reason: no_reply (the
// connection broke before the answer), timeout (the server was slower than
// lojal waits), or worker_lost (the attempt stopped mid-request).
func UncertainCause(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "stopped before the answer"), strings.Contains(r, "awaiting"):
		return "worker_lost"
	case strings.Contains(r, "timeout"), strings.Contains(r, "deadline"):
		return "timeout"
	}
	return "no_reply"
}

// Routed counts a routing outcome for one journey.
func (m *Metrics) Routed(action string) {
	if m == nil {
		return
	}
	m.Routes.WithLabelValues(action).Inc()
}

// RouteFailed counts a failed attempt to route an event.
func (m *Metrics) RouteFailed(dead bool) {
	if m == nil {
		return
	}
	result := "retry"
	if dead {
		result = "dead_letter"
	}
	m.RouteFailures.WithLabelValues(result).Inc()
}

// Dispatch sets the event path's gauges.
func (m *Metrics) Dispatch(live, bulk, dead int64, oldestLive time.Duration) {
	if m == nil {
		return
	}
	m.DispatchBacklog.WithLabelValues("live").Set(float64(live))
	m.DispatchBacklog.WithLabelValues("bulk").Set(float64(bulk))
	m.DeadLetters.Set(float64(dead))
	m.DispatchLag.Set(oldestLive.Seconds())
	m.DispatchStatsAt.SetToCurrentTime()
}

// Reconciled counts runs closed by the reconciler.
func (m *Metrics) Reconciled(n int) {
	if m == nil {
		return
	}
	m.RunsReconciled.Add(float64(n))
}

// Step records a send step's latency.
func (m *Metrics) Step(journey string, took time.Duration) {
	if m == nil {
		return
	}
	m.StepSeconds.WithLabelValues(journey).Observe(took.Seconds())
}

// Dialog counts one reply, answer or conversation step (see Dialogue).
func (m *Metrics) Dialog(what, topic string) {
	if m == nil {
		return
	}
	m.Dialogue.WithLabelValues(what, topic).Inc()
}
