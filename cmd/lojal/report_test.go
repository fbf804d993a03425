package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// seededDB returns a database URL whose search path is a fresh schema with
// a few customers and decisions in it.
func seededDB(t *testing.T) string {
	t.Helper()
	cfg := pgtest.Config(t)
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"c-1", "c-2", "c-3"} {
		c := journey.Customer{ID: id, Email: id + "@example.no", Locale: "nb", Timezone: "Europe/Oslo", Consent: map[string]bool{"email": true},
			Attributes: map[string]any{"first_name": "Kari"}}
		if _, err := s.UpsertCustomer(ctx, c, "test"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	decide := func(cust, key string, d policy.Decision) {
		r := store.Request{IdempotencyKey: key + ".1", RequestKey: key, CustomerID: cust, WorkflowID: "w", JourneyID: "renewal-reminder",
			StepID: "remind", Channel: "email", Priority: policy.High, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
		if _, err := s.Decide(ctx, r, time.Hour, func(store.Snapshot) policy.Decision { return d }); err != nil {
			t.Fatal(err)
		}
		if d.Verdict == policy.Allow {
			attempt, err := s.BeginSend(ctx, r.IdempotencyKey, store.Sending{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MarkSent(ctx, r.IdempotencyKey, attempt, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	decide("c-1", "a", policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK})
	decide("c-1", "b", policy.Decision{Verdict: policy.Defer, Channel: "email", Reason: policy.ReasonMinGap, Until: now.Add(time.Hour),
		Detail: policy.Detail{LastContact: now, MinGap: "24h"}})
	decide("c-2", "c", policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK})
	decide("c-2", "d", policy.Decision{Verdict: policy.Suppress, Channel: "email", Reason: policy.ReasonNoConsent})
	// c-3's message was handed over and no answer came: it may have been
	// delivered, and counts as sent.
	r := store.Request{IdempotencyKey: "e.1", RequestKey: "e", CustomerID: "c-3", WorkflowID: "w", JourneyID: "renewal-reminder",
		StepID: "remind", Channel: "email", Priority: policy.High, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	if _, err := s.Decide(ctx, r, time.Hour, func(store.Snapshot) policy.Decision {
		return policy.Decision{Verdict: policy.Allow, Channel: "email", Reason: policy.ReasonOK}
	}); err != nil {
		t.Fatal(err)
	}
	attempt, err := s.BeginSend(ctx, "e.1", store.Sending{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkUncertain(ctx, "e.1", attempt, now, "no reply after the end of data: EOF"); err != nil {
		t.Fatal(err)
	}
	return cfg.URL + "&search_path=" + cfg.Schema
}

func TestWhyExplainsDecisions(t *testing.T) {
	t.Parallel()
	db := seededDB(t)
	out, err := runCLI(t, "why", "--customer", "c-1", "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"Kari (c-1)", "renewal-reminder/remind", "sent", "too soon after the last message (min_gap)", "min gap 24h"} {
		if !strings.Contains(out, w) {
			t.Errorf("why lacks %q:\n%s", w, out)
		}
	}
	if _, err := runCLI(t, "why", "--customer", "nobody", "--database-url", db); exitCode(err) != 1 {
		t.Errorf("unknown customer: %v", err)
	}
	out, err = runCLI(t, "why", "--customer", "c-3", "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{"uncertain (the server may have it; never resent)", "no reply after the end of data"} {
		if !strings.Contains(out, w) {
			t.Errorf("why lacks %q:\n%s", w, out)
		}
	}
}

func TestReportPressure(t *testing.T) {
	t.Parallel()
	db := seededDB(t)
	// c-1 marks the message as spam; the report comes twice and counts
	// once: 1 complaint for 3 delivered emails.
	st, err := store.Open(context.Background(), store.Config{URL: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 2 {
		if err := st.Complain(context.Background(), "email", "c-1@example.no", "m-1@lojal.example", "abuse"); err != nil {
			t.Fatal(err)
		}
	}
	chart := filepath.Join(t.TempDir(), "pressure.png")
	out, err := runCLI(t, "report", "pressure", "--days", "7", "--png", chart, "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// 3 customers x 1 week: each had one message (c-3's uncertain one
	// counts).
	today := time.Now().UTC().Format("2006-01-02")
	for _, w := range []string{"3 customers, 1 weeks", "1  3  100.0%", "defer     min_gap     1", "suppress  no_consent  1",
		"warning at 1 (0.1%), alarm at 3 (0.3%)", today + "  3  1  333.33  ALARM"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(w), " ")) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	b, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 800 {
		t.Fatalf("chart: %v %v", img.Bounds(), err)
	}
}

// TestWhyIsReadable: consent and opt-outs in words, not Go map syntax, and
// every time in the customer's own zone, named, also where Go would write
// a zone as "-03".
func TestWhyIsReadable(t *testing.T) {
	t.Parallel()
	cfg := pgtest.Config(t)
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := journey.Customer{ID: "c-9", Email: "freja@example.dk", Locale: "da", Timezone: "America/Sao_Paulo",
		Consent: map[string]bool{"email": true, "push": false}, TopicsOptedOut: []string{"onboarding", "loyalty"},
		Attributes: map[string]any{"first_name": "Freja", "last_name": "Madsen"}}
	if _, err := s.UpsertCustomer(ctx, c, "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)
	// The ledger has months from the migration's on; this decision is older.
	if _, err := s.EnsurePartitions(ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	r := store.Request{IdempotencyKey: "q.1", RequestKey: "q", CustomerID: "c-9", WorkflowID: "w", JourneyID: "renewal-reminder",
		StepID: "remind", Channel: "email", Priority: policy.High, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	if _, err := s.Decide(ctx, r, time.Hour, func(store.Snapshot) policy.Decision {
		return policy.Decision{Verdict: policy.Defer, Channel: "email", Reason: policy.ReasonMinGap, Until: now.Add(10 * time.Hour),
			Detail: policy.Detail{LastContact: now.Add(-2 * time.Hour), MinGap: "24h"}}
	}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "why", "--customer", "c-9", "--database-url", cfg.URL+"&search_path="+cfg.Schema)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, w := range []string{
		"Freja Madsen (c-9)  freja@example.dk  locale da",
		"time zone  America/Sao_Paulo (UTC-3); every time below is in it",
		"consent    email yes, push no",
		"opted out  loyalty, onboarding",
		"defer until Mon 02 Mar 06:30 UTC-3",
		"last message Sun 01 Mar 18:30 UTC-3, min gap 24h",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("why lacks %q:\n%s", w, out)
		}
	}
	for _, bad := range []string{"map[", " -03", "UTC\t", ":00 UTC "} {
		if strings.Contains(out, bad) {
			t.Errorf("why shows %q:\n%s", bad, out)
		}
	}
}

// TestSpamRateMetric: the spam rate of the last 24 hours is a metric, with
// its level and the thresholds it is held to.
func TestSpamRateMetric(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{URL: seededDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := metrics.New()
	ctx := context.Background()
	if level, err := spamGauges(ctx, st, m, time.Now()); err != nil || level != "ok" {
		t.Fatalf("no complaints: %s %v", level, err)
	}
	if err := st.Complain(ctx, "email", "c-2@example.no", "m-2@lojal.example", "abuse"); err != nil {
		t.Fatal(err)
	}
	if level, err := spamGauges(ctx, st, m, time.Now()); err != nil || level != "alarm" {
		t.Fatalf("1 complaint for 3 emails: %s %v", level, err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"lojal_spam_complaints_per_1000 333.33", "lojal_spam_complaint_level 2",
		`lojal_spam_complaint_threshold_per_1000{level="warning"} 1`, `lojal_spam_complaint_threshold_per_1000{level="alarm"} 3`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A day later the complaint has left the window.
	if level, err := spamGauges(ctx, st, m, time.Now().Add(25*time.Hour)); err != nil || level != "ok" {
		t.Fatalf("a day later: %s %v", level, err)
	}
}

// TestReportJourneys: the table and the chart of lojal report journeys on
// a holdout whose treated customers reach the goal more often.
func TestReportJourneys(t *testing.T) {
	t.Parallel()
	db := seededDB(t)
	st, err := store.Open(context.Background(), store.Config{URL: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	// renewal-reminder: c-1 and c-2 treated, both reach the goal; c-3
	// held out, does not. (seededDB sent them 3 messages.)
	for _, c := range []string{"c-1", "c-2", "c-3"} {
		if _, _, err := st.RecordRun(ctx, "w-"+c, "renewal-reminder", "v", c, "", "e-"+c); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordRunGroup(ctx, "renewal-reminder", "e-"+c, c == "c-3"); err != nil {
			t.Fatal(err)
		}
		if c != "c-3" {
			if err := st.FinishRun(ctx, "renewal-reminder", "e-"+c, "goal"); err != nil {
				t.Fatal(err)
			}
		}
	}
	chart := filepath.Join(t.TempDir(), "journeys.png")
	out, err := runCLI(t, "report", "journeys", "--days", "7", "--png", chart, "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Log(out)
		if dst := os.Getenv("LOJAL_KEEP_CHART"); dst != "" {
			b, _ := os.ReadFile(chart)
			_ = os.WriteFile(dst, b, 0o644)
		}
	}
	// 2 of 2 against 0 of 1: +100 pp, Newcombe -3.1 .. +100 (a holdout of
	// one proves nothing: no *).
	for _, w := range []string{"runs started in the last 7 days", "renewal-reminder 3 1 (33.3%) 1.50 100.0% 0.0% +100.0 [-"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "] *") {
		t.Errorf("an uplift over a holdout of one is marked as excluding 0:\n%s", out)
	}
	b, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("chart: %v", err)
	}
	if out, err := runCLI(t, "report", "journeys", "--days", "0", "--database-url", db); err == nil {
		t.Errorf("--days 0 accepted:\n%s", out)
	}
}

// TestWhyShowsHeldOutMessages: lojal why says which messages a customer
// was held out of, apart from the decisions (none was taken for them).
func TestWhyShowsHeldOutMessages(t *testing.T) {
	t.Parallel()
	db := seededDB(t)
	st, err := store.Open(context.Background(), store.Config{URL: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	if err := st.RecordHoldoutMessage(context.Background(), store.HoldoutMessage{RequestKey: "w@r/welcome#1", CustomerID: "c-2",
		WorkflowID: "w", JourneyID: "trial-welcome", StepID: "welcome", Template: "trial-welcome", Channel: "email", Priority: "normal", At: at}); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "why", "--customer", "c-2", "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "HELD OUT OF JOURNEY/STEP CHANNEL TEMPLATE Mon 02 Mar 09:00 CET trial-welcome/welcome email trial-welcome"
	if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
		t.Errorf("why lacks %q:\n%s", want, out)
	}
}

// TestPartitionsAheadMetric: how long the tables can take rows is a
// metric, so an alert sees a stopped retention job months before inserts
// fail.
func TestPartitionsAheadMetric(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{URL: seededDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := st.EnsurePartitions(ctx, now, 2); err != nil {
		t.Fatal(err)
	}
	until, err := st.PartitionedUntil(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	if err := partitionGauge(ctx, st, m, now); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := fmt.Sprintf("lojal_partitions_ahead_days %v", until.Sub(now).Hours()/24)
	if days := until.Sub(now).Hours() / 24; days < 59 || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("metrics lack %q (%.1f days ahead):\n%s", want, days, rec.Body.String())
	}
}
