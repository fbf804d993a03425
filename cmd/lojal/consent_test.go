package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// consentDB has one customer with a soft opt-in from a sale and one
// loyalty message sent on it, decided by the real policy.
func consentDB(t *testing.T) string {
	t.Helper()
	cfg := pgtest.Config(t)
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo"}, "crm"); err != nil {
		t.Fatal(err)
	}
	sale := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	if _, err := s.RecordConsent(ctx, "c-1", []policy.ConsentEntry{{Channel: "email", Topic: policy.AllTopics, Action: policy.Grant,
		Basis: policy.BasisSoftOptIn, At: sale, Source: policy.SourceAPI, Actor: "api:shop", SaleID: "o-123", SaleAt: sale, ProductGroup: "home"}}); err != nil {
		t.Fatal(err)
	}
	cat, err := loadCatalog("../../journeys")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r := store.Request{IdempotencyKey: "k.1", RequestKey: "k", CustomerID: "c-1", WorkflowID: "w", JourneyID: "loyalty-benefit",
		StepID: "tell", Channel: "email", Topic: "loyalty", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	j, _ := cat.Journey("loyalty-benefit")
	rules := *cat.Rules
	rules.Quiet = nil
	d, err := s.Decide(ctx, r, time.Hour, func(snap store.Snapshot) policy.Decision {
		return policy.Decide(rules, snap.Relationship, snap.Window, snap.Waiting, policy.Request{Key: "k", Channel: "email", Topic: "loyalty", Bases: j.Bases}, now)
	})
	if err != nil || d.Verdict != policy.Allow {
		t.Fatalf("decide: %+v %v", d, err)
	}
	attempt, err := s.BeginSend(ctx, "k.1", store.Sending{Subject: "En fordel til deg"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, "k.1", attempt, now); err != nil {
		t.Fatal(err)
	}
	return cfg.URL + "&search_path=" + cfg.Schema
}

func TestConsentExportAndReport(t *testing.T) {
	t.Parallel()
	db := consentDB(t)
	out, err := runCLI(t, "consent", "export", "--customer", "c-1", "--database-url", db, "--journeys", "../../journeys")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ev struct {
		Entries  []map[string]any `json:"entries"`
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(ev.Entries) != 1 || ev.Entries[0]["sale_id"] != "o-123" || len(ev.Messages) != 1 ||
		ev.Messages[0]["basis_fact"] != "soft opt-in from sale o-123, 2026-02-01, product group home" {
		t.Fatalf("evidence %+v", ev)
	}
	page, err := runCLI(t, "consent", "export", "--customer", "c-1", "--html", "--database-url", db, "--journeys", "../../journeys")
	if err != nil || !strings.Contains(page, "<h1>Consent evidence for customer c-1</h1>") || !strings.Contains(page, "En fordel til deg") {
		t.Fatalf("page: %v\n%s", err, page)
	}
	if _, err := runCLI(t, "consent", "export", "--customer", "nobody", "--database-url", db, "--journeys", "../../journeys"); exitCode(err) != 1 {
		t.Errorf("unknown customer: %v", err)
	}
	rep, err := runCLI(t, "consent", "report", "--database-url", db)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	for _, w := range []string{"(1 in all)", "soft opt-in  1", "soft opt-in  email    loyalty  1"} {
		if !strings.Contains(rep, w) {
			t.Errorf("report lacks %q:\n%s", w, rep)
		}
	}
}

func TestRetentionKeepsConsentLongerThanMessages(t *testing.T) {
	t.Parallel()
	db := consentDB(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--retain-consent-days", "300"}, "LOJAL_RETAIN_CONSENT_DAYS is 300d, not longer than LOJAL_RETAIN_LEDGER_DAYS (400d)"},
		{[]string{"--retain-ledger-days", "10"}, "LOJAL_RETAIN_LEDGER_DAYS is 10d, shorter than"},
	} {
		out, err := runCLI(t, append([]string{"retention", "--database-url", db, "--journeys", "../../journeys"}, c.args...)...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q\n%s", c.args, err, c.want, out)
		}
	}
	out, err := runCLI(t, "retention", "--database-url", db, "--journeys", "../../journeys")
	if err != nil || !strings.Contains(out, "and 0 consent-ledger entries no longer needed as evidence for 1825d") {
		t.Fatalf("%v\n%s", err, out)
	}
}
