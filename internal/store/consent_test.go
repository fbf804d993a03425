package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// upgradeFrom builds a schema at version `version` (before the consent
// ledger) by applying the embedded migrations up to it, runs fill on it,
// then migrates it to the latest version as an upgrade would.
func upgradeFrom(t *testing.T, version int, fill string) store.Config {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Shared(t).URL
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := store.Config{URL: url, Schema: "up_" + hex.EncodeToString(b[:])}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{cfg.Schema}.Sanitize()+" CASCADE")
			_ = c.Close(context.Background())
		}
	})
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	sql := fmt.Sprintf("CREATE SCHEMA %s; SET search_path = %s;\n", schema, schema) +
		"CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());\n"
	for _, m := range ms[:version] {
		sql += m.SQL + fmt.Sprintf(";\nINSERT INTO schema_migrations (version, name) VALUES (%d, '%s');\n", m.Version, m.Name)
	}
	if _, err := conn.Exec(ctx, sql+fill); err != nil {
		t.Fatalf("build the version %d schema: %v", version, err)
	}
	applied, err := store.Migrate(ctx, cfg)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if len(applied) == 0 || applied[0] != version+1 {
		t.Fatalf("upgrade applied %v", applied)
	}
	return cfg
}

// An upgrade turns the booleans and opt-out lists customers had into
// ledger entries, marked as migrated, with the old values as evidence,
// and the customer's consent reads the same before and after.
func TestUpgradeMovesConsentIntoTheLedger(t *testing.T) {
	t.Parallel()
	cfg := upgradeFrom(t, 8, `
INSERT INTO customers (id, email, topics_opted_out, updated_at) VALUES
    ('c-1', 'kari@example.no', '{loyalty,feedback}', '2025-06-01T10:00:00Z'),
    ('c-2', 'ola@example.no', '{}', '2025-06-02T10:00:00Z');
INSERT INTO consents (customer_id, channel, granted, source, recorded_at) VALUES
    ('c-1', 'email', true, 'crm-import', '2025-05-01T09:00:00Z'),
    ('c-1', 'push', false, 'app', '2025-05-02T09:00:00Z'),
    ('c-2', 'email', false, 'api', '2025-05-03T09:00:00Z');
`)
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c, err := s.Customer(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Consent["email"] || c.Consent["push"] || !slices.Equal(c.TopicsOptedOut, []string{"feedback", "loyalty"}) {
		t.Fatalf("c-1 after the upgrade: consent %v, opted out of %v", c.Consent, c.TopicsOptedOut)
	}
	entries, err := s.ConsentEntries(ctx, "c-1")
	if err != nil || len(entries) != 4 {
		t.Fatalf("entries %+v %v", entries, err)
	}
	grant := entries[0]
	if grant.Action != policy.Grant || grant.Channel != "email" || grant.Source != policy.SourceMigration || grant.Actor != "crm-import" ||
		!grant.At.Equal(time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)) || !strings.Contains(grant.Evidence, "email consent granted, source 'crm-import'") {
		t.Errorf("migrated grant %+v", grant)
	}
	if e := entries[2]; e.Topic != "feedback" || e.Action != policy.Withdraw || e.Channel != policy.AllChannels {
		t.Errorf("migrated opt-out %+v", e)
	}
	if c2, _ := s.Customer(ctx, "c-2"); c2.Consent["email"] || len(c2.TopicsOptedOut) != 0 {
		t.Errorf("c-2 after the upgrade: %+v", c2)
	}
	// What the policy decides is what it decided before: consent on email,
	// none on push, nothing on the topics opted out of.
	rules := policy.Rules{Topics: map[string]policy.Topic{"loyalty": {Kind: policy.TopicMarketing}, "news": {Kind: policy.TopicMarketing}}}
	rel := policy.Relationship{Channels: map[string]policy.ChannelState{"email": {Address: true}, "push": {Address: true}}, Consent: entries}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		channel, topic string
		reason         policy.Reason
	}{{"email", "news", policy.ReasonOK}, {"push", "news", policy.ReasonNoConsent}, {"email", "loyalty", policy.ReasonTopicOptedOut}} {
		d := policy.Decide(rules, rel, nil, nil, policy.Request{Key: "k", Channel: tc.channel, Topic: tc.topic}, now)
		if d.Reason != tc.reason {
			t.Errorf("%s on %s: %s, want %s", tc.topic, tc.channel, d.Reason, tc.reason)
		}
	}
	// The old tables are gone: nothing can write consent the ledger misses.
	var n int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'consents'", cfg.Schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("consents table still there (%d, %v)", n, err)
	}
}

func TestConsentLedgerIsAppendOnly(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}}, "crm"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"UPDATE consent_ledger SET action = 'withdraw'", "DELETE FROM consent_ledger"} {
		_, err := s.Pool().Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused", sql, err)
		}
	}
	if e, _ := s.ConsentEntries(ctx, "c-1"); len(e) != 1 || e[0].Action != policy.Grant {
		t.Fatalf("ledger changed: %+v", e)
	}
}

// A CRM that sends the same customer every night records nothing new; a
// change records exactly the difference, with who sent it.
func TestUpsertRecordsOnlyChanges(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	c := journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true, "push": false}}
	for range 3 {
		if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := s.ConsentEntries(ctx, "c-1")
	if len(entries) != 1 || entries[0].Channel != "email" || entries[0].Actor != "crm" || entries[0].Source != policy.SourceAPI {
		t.Fatalf("after three identical syncs: %+v", entries)
	}
	c.Consent = map[string]bool{"email": false}
	c.TopicsOptedOut = []string{"loyalty"}
	if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
		t.Fatal(err)
	}
	entries, _ = s.ConsentEntries(ctx, "c-1")
	if len(entries) != 3 || entries[1].Action != policy.Withdraw || entries[1].Topic != policy.AllTopics || entries[2].Topic != "loyalty" {
		t.Fatalf("after a withdrawal: %+v", entries)
	}
	// "No consent" for a customer who only has a soft opt-in is their
	// opt-out, and is recorded.
	sale := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-2", Email: "ola@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, "c-2", []policy.ConsentEntry{{Channel: "email", Topic: policy.AllTopics, Action: policy.Grant,
		Basis: policy.BasisSoftOptIn, At: sale, Source: policy.SourceAPI, SaleID: "o-1", SaleAt: sale, ProductGroup: "home"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-2", Email: "ola@example.no", Consent: map[string]bool{"email": false}}, "crm"); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.ConsentEntries(ctx, "c-2"); len(e) != 2 || e[1].Action != policy.Withdraw {
		t.Fatalf("soft opt-in then no: %+v", e)
	}
	if _, err := s.RecordConsent(ctx, "ghost", []policy.ConsentEntry{{Channel: "email", Topic: "x", Action: policy.Withdraw,
		Basis: policy.BasisConsent, At: sale, Source: policy.SourceAPI}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
	if _, err := s.RecordConsent(ctx, "c-2", []policy.ConsentEntry{{Channel: "email", Topic: policy.AllTopics, Action: policy.Grant,
		Basis: policy.BasisSoftOptIn, At: sale, Source: policy.SourceAPI}}); !errors.Is(err, store.ErrConsentRefused) {
		t.Fatalf("soft opt-in without a sale: %v", err)
	}
}

// TestASyncDoesNotUndoTheCustomersOwnWithdrawal: a CRM that sends its
// copy of the customer every night (consent true, no opt-outs) used to
// re-grant what the customer had just withdrawn through lojal (an
// unsubscribe link, the preference centre): marketing resumed the next
// morning on a "consent" with no wording, recorded by the API. A sync
// cannot re-grant what the customer withdrew themselves; the consent
// endpoint, with the wording the customer agreed to, can.
func TestASyncDoesNotUndoTheCustomersOwnWithdrawal(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	crm := journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}, TopicsOptedOut: []string{}}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	customer := store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: time.Now()}
	if err := s.Unsubscribe(ctx, "c-1", "loyalty", nil, customer); err != nil {
		t.Fatal(err)
	}
	centre := store.Capture{Source: policy.SourcePreferenceCentre, Actor: "customer", At: time.Now()}
	if _, err := s.SetPreferences(ctx, "c-1", store.Preferences{Consent: map[string]bool{"email": false}}, centre); err != nil {
		t.Fatal(err)
	}
	before, _ := s.ConsentEntries(ctx, "c-1")
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	after, _ := s.ConsentEntries(ctx, "c-1")
	if len(after) != len(before) {
		t.Fatalf("the nightly sync recorded %+v after the customer's own withdrawals", after[len(before):])
	}
	if _, granted := policy.ChannelConsent(after, "email"); granted || !slices.Contains(policy.TopicsOptedOut(after), "loyalty") {
		t.Fatalf("after the sync: email consent %v, opted out of %v", granted, policy.TopicsOptedOut(after))
	}
	// What a CRM withdrew, a CRM may grant again.
	crm.Consent, crm.TopicsOptedOut = map[string]bool{"push": false}, []string{"loyalty", "feedback"}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	crm.TopicsOptedOut = []string{"loyalty"}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	if out := policy.TopicsOptedOut(mustEntries(t, s, "c-1")); slices.Contains(out, "feedback") {
		t.Fatalf("a topic the CRM opted out of and back in: opted out of %v", out)
	}
}

// withdrawnTwice has customer id, synced by a CRM with email consent,
// withdraw it in the preference centre, and then a support agent record a
// withdrawal of their own; it returns the CRM's copy and the customer's
// capture.
func withdrawnTwice(t *testing.T, s *store.Store, id string) (journey.Customer, store.Capture) {
	t.Helper()
	ctx := context.Background()
	crm := journey.Customer{ID: id, Email: "kari@example.no", Consent: map[string]bool{"email": true}}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	centre := store.Capture{Source: policy.SourcePreferenceCentre, Actor: "customer", At: time.Now()}
	if _, err := s.SetPreferences(ctx, id, store.Preferences{Consent: map[string]bool{"email": false}}, centre); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, id, []policy.ConsentEntry{{Channel: "email", Topic: policy.AllTopics, Action: policy.Withdraw,
		Basis: policy.BasisConsent, At: time.Now(), Source: policy.SourceAPI, Actor: "api:support"}}); err != nil {
		t.Fatal(err)
	}
	return crm, centre
}

// TestTheCustomersWithdrawalStandsUnderLaterOnes: the customer
// unsubscribed, then a support agent recorded a withdrawal of their own
// through the API. The customer's withdrawal still stands: a stale copy
// (a CRM's sync, the consent route without wording) cannot grant again,
// though it is no longer the last entry.
func TestTheCustomersWithdrawalStandsUnderLaterOnes(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	crm, centre := withdrawnTwice(t, s, "c-1")
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, granted := policy.ChannelConsent(mustEntries(t, s, "c-1"), "email"); granted {
		t.Fatal("the nightly sync granted again what the customer withdrew")
	}
	// Consent the customer gives again ends it.
	if _, err := s.SetPreferences(ctx, "c-1", store.Preferences{Consent: map[string]bool{"email": true}}, centre); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPreferences(ctx, "c-1", store.Preferences{Consent: map[string]bool{"email": false}, Sync: true}, store.Capture{Source: policy.SourceAPI, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, granted := policy.ChannelConsent(mustEntries(t, s, "c-1"), "email"); !granted {
		t.Fatal("what a CRM withdrew after the customer's own consent, a CRM may grant again")
	}
}

// TestTheCustomersTopicOptOutStandsUnderLaterOnes: as for a channel, a
// topic the customer opted out of themselves stays opted out when a
// support agent's withdrawal of it comes after: a sync cannot lift it.
func TestTheCustomersTopicOptOutStandsUnderLaterOnes(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	crm := journey.Customer{ID: "c-1", Email: "kari@example.no", Consent: map[string]bool{"email": true}, TopicsOptedOut: []string{}}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, "c-1", "loyalty", nil, store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordConsent(ctx, "c-1", []policy.ConsentEntry{{Channel: policy.AllChannels, Topic: "loyalty", Action: policy.Withdraw,
		Basis: policy.BasisConsent, At: time.Now(), Source: policy.SourceAPI, Actor: "api:support"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertCustomer(ctx, crm, "crm"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(policy.TopicsOptedOut(mustEntries(t, s, "c-1")), "loyalty") {
		t.Fatal("the nightly sync lifted the customer's own opt-out")
	}
}

// TestErasureEndsTheCustomersOwnWithdrawal: the erased customer
// unsubscribed and a support agent recorded a withdrawal after; a new
// customer created under the same id is not bound by the first.
func TestErasureEndsTheCustomersOwnWithdrawal(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	c, _ := withdrawnTwice(t, s, "c-11")
	if _, err := s.Pool().Exec(ctx, "DELETE FROM customers WHERE id = 'c-11'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, granted := policy.ChannelConsent(mustEntries(t, s, "c-11"), "email"); !granted {
		t.Fatal("the new c-11 is bound by the erased c-11's own withdrawal")
	}
}

// TestConsentDoesNotOutliveErasure: erasing a customer (DELETE FROM
// customers) keeps their consent evidence for its retention, and a new
// customer under the same id (a re-import, a new sign-up with the same
// CRM id) used to inherit it: marketing went out on a grant given before
// the erasure. A customer created again starts without consent.
func TestConsentDoesNotOutliveErasure(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	c := journey.Customer{ID: "c-9", Email: "kari@example.no", Consent: map[string]bool{"email": true}}
	if _, err := s.UpsertCustomer(ctx, c, "crm"); err != nil {
		t.Fatal(err)
	}
	sale := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := s.RecordConsent(ctx, "c-9", []policy.ConsentEntry{{Channel: "push", Topic: policy.AllTopics, Action: policy.Grant,
		Basis: policy.BasisSoftOptIn, At: sale, Source: policy.SourceAPI, SaleID: "o-1", SaleAt: sale, ProductGroup: "home"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "DELETE FROM customers WHERE id = 'c-9'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-9", Email: "ola@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	entries := mustEntries(t, s, "c-9")
	if _, granted := policy.ChannelConsent(entries, "email"); granted {
		t.Errorf("the new c-9 has the erased c-9's email consent: %+v", entries)
	}
	// An erased customer who had unsubscribed themselves: the new customer
	// under the id is not bound by it, and a sync may grant them consent.
	c10 := journey.Customer{ID: "c-10", Email: "kari@example.no", Consent: map[string]bool{"email": true}}
	if _, err := s.UpsertCustomer(ctx, c10, "crm"); err != nil {
		t.Fatal(err)
	}
	own := store.Capture{Source: policy.SourcePreferenceCentre, Actor: "customer", At: time.Now()}
	if _, err := s.SetPreferences(ctx, "c-10", store.Preferences{Consent: map[string]bool{"email": false}, OptedOut: []string{"loyalty"}}, own); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "DELETE FROM customers WHERE id = 'c-10'"); err != nil {
		t.Fatal(err)
	}
	c10.Email, c10.TopicsOptedOut = "ola@example.no", []string{}
	if _, err := s.UpsertCustomer(ctx, c10, "crm"); err != nil {
		t.Fatal(err)
	}
	e10 := mustEntries(t, s, "c-10")
	if _, granted := policy.ChannelConsent(e10, "email"); !granted || len(policy.TopicsOptedOut(e10)) != 0 {
		t.Errorf("the new c-10, synced with consent and no opt-outs, is bound by the erased c-10's own withdrawals: %+v", e10)
	}
	// Any withdrawal on a channel ends every soft opt-in on it.
	ended := slices.ContainsFunc(entries, func(e policy.ConsentEntry) bool {
		return e.Action == policy.Withdraw && e.Topic == policy.AllTopics && (e.Channel == "push" || e.Channel == policy.AllChannels)
	})
	if !ended {
		t.Errorf("the new c-9 has the erased c-9's soft opt-in on push: %+v", entries)
	}
}

func mustEntries(t *testing.T, s *store.Store, id string) []policy.ConsentEntry {
	t.Helper()
	e, err := s.ConsentEntries(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The decision sees the ledger, and what it relied on is stored with it
// and counted per basis.
func TestDecisionRecordsItsBasis(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	sale := now.Add(-24 * time.Hour)
	if _, err := s.RecordConsent(ctx, "c-1", []policy.ConsentEntry{{Channel: "email", Topic: policy.AllTopics, Action: policy.Grant,
		Basis: policy.BasisSoftOptIn, At: sale, Source: policy.SourceAPI, SaleID: "o-123", SaleAt: sale, ProductGroup: "home"}}); err != nil {
		t.Fatal(err)
	}
	rules := policy.Rules{Topics: map[string]policy.Topic{"offers": {Kind: policy.TopicMarketing, ProductGroups: []string{"home"}}}}
	req := store.Request{IdempotencyKey: "w/s#1.1", RequestKey: "w/s#1", CustomerID: "c-1", WorkflowID: "w", JourneyID: "j",
		StepID: "s", Channel: "email", Topic: "offers", Priority: policy.Normal, FirstAsked: now, Now: now, ReservationTTL: time.Hour}
	d, err := s.Decide(ctx, req, time.Hour, func(snap store.Snapshot) policy.Decision {
		return policy.Decide(rules, snap.Relationship, snap.Window, snap.Waiting, policy.Request{Key: req.RequestKey, Channel: "email",
			Topic: "offers", Bases: []policy.Basis{policy.BasisConsent, policy.BasisSoftOptIn}}, now)
	})
	if err != nil || d.Verdict != policy.Allow || d.Detail.Basis != policy.BasisSoftOptIn {
		t.Fatalf("decide: %+v %v", d, err)
	}
	attempt, err := s.BeginSend(ctx, d.Key, store.Sending{MessageID: "<m1@x>", Address: "kari@example.no"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(ctx, d.Key, attempt, now); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.ConsentMessages(ctx, "c-1")
	if err != nil || len(msgs) != 1 || msgs[0].Basis != policy.BasisSoftOptIn ||
		msgs[0].BasisFact != "soft opt-in from sale o-123, "+sale.Format("2006-01-02")+", product group home" {
		t.Fatalf("messages %+v %v", msgs, err)
	}
	counts, err := s.MessagesPerBasis(ctx, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil || len(counts) != 1 || counts[0] != (store.BasisCount{Basis: policy.BasisSoftOptIn, Channel: "email", Topic: "offers", Count: 1}) {
		t.Fatalf("per basis %+v %v", counts, err)
	}
}

// Double opt-in: the request waits; the confirmation records consent
// with the wording asked for and the request as evidence, once.
func TestDoubleOptIn(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ask := func() store.ConsentRequest {
		r, err := s.RequestConsent(ctx, store.ConsentRequest{CustomerID: "c-1", Wording: "Ja, send meg tilbud på e-post", WordingVersion: "signup-v4",
			Locale: "nb", RequestedAt: now, RequestedBy: "api:web", ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := ask()
	if c, _ := s.Customer(ctx, "c-1"); c.Consent["email"] {
		t.Fatal("consent before the confirmation")
	}
	if _, err := s.ConfirmConsent(ctx, r.ID, now.Add(2*time.Hour)); !errors.Is(err, store.ErrRequestExpired) {
		t.Fatalf("late confirmation: %v", err)
	}
	r = ask()
	got, err := s.ConfirmConsent(ctx, r.ID, now.Add(time.Minute))
	if err != nil || got.EntryID == 0 {
		t.Fatalf("confirm: %+v %v", got, err)
	}
	if _, err := s.ConfirmConsent(ctx, r.ID, now.Add(2*time.Minute)); err != nil {
		t.Fatalf("second click: %v", err)
	}
	entries, _ := s.ConsentEntries(ctx, "c-1")
	if len(entries) != 1 {
		t.Fatalf("entries %+v, want one", entries)
	}
	e := entries[0]
	if e.Source != policy.SourceDoubleOptIn || e.Wording != "Ja, send meg tilbud på e-post" || e.WordingVersion != "signup-v4" ||
		!strings.Contains(e.Evidence, fmt.Sprintf("confirmed request %d", r.ID)) || !strings.Contains(e.Evidence, "kari@example.no") {
		t.Fatalf("entry %+v", e)
	}
	// A click after the address changed proves nothing about the new one.
	r = ask()
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@other.example"}, "crm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfirmConsent(ctx, r.ID, now.Add(time.Minute)); !errors.Is(err, store.ErrAddressChanged) {
		t.Fatalf("confirmation for an old address: %v", err)
	}
}

func TestRetentionKeepsConsentLonger(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	ctx := context.Background()
	day := 24 * time.Hour
	rules := policy.Rules{PurposeWindow: 30 * day}
	if err := (store.Retention{Ledger: 400 * day, Consent: 300 * day}).Check(rules, nil); err == nil ||
		!strings.Contains(err.Error(), "consent retention is 300d, not longer than ledger retention (400d)") {
		t.Fatalf("shorter consent retention: %v", err)
	}
	if err := (store.Retention{Ledger: 20 * day, Consent: 300 * day}).Check(rules, nil); err == nil {
		t.Fatal("ledger retention shorter than the policy's window accepted")
	}
	// A month of the contact ledger goes only when all of it is past its
	// retention: decisions stay up to a month longer than the setting.
	// Consent kept only a day longer could go before the messages it
	// proves lawful.
	if err := (store.Retention{Ledger: 400 * day, Consent: 401 * day}).Check(rules, nil); err == nil ||
		!strings.Contains(err.Error(), "at least 431d") {
		t.Fatalf("consent retention a day longer than the ledger's: %v", err)
	}
	if err := (store.Retention{Ledger: 400 * day, Consent: 431 * day}).Check(rules, nil); err != nil {
		t.Fatalf("consent retention a month longer than the ledger's: %v", err)
	}
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-1", Email: "kari@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	old := now.Add(-3 * 365 * day)
	entry := func(a policy.ConsentAction, at time.Time) policy.ConsentEntry {
		return policy.ConsentEntry{Channel: "email", Topic: policy.AllTopics, Action: a, Basis: policy.BasisConsent, At: at,
			Source: policy.SourceImport, Wording: "Yes", WordingVersion: "v1"}
	}
	if _, err := s.RecordConsent(ctx, "c-1", []policy.ConsentEntry{entry(policy.Grant, old), entry(policy.Withdraw, old.Add(day)),
		entry(policy.Grant, old.Add(2*day)), entry(policy.Grant, now.Add(-day))}); err != nil {
		t.Fatal(err)
	}
	// The consent evidence is purged by the same pass that drops old
	// months of the contact ledger.
	p, err := s.Retain(ctx, now, store.Retention{Ledger: 400 * day, Consent: 2 * 365 * day}, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := s.ConsentEntries(ctx, "c-1")
	// The first grant was replaced more than two years ago: gone. The
	// withdrawal stays (an opt-out must stay provable); the grant after it
	// was replaced only yesterday; the latest is the customer's consent.
	if p.Consent != 1 || len(entries) != 3 || entries[0].Action != policy.Withdraw {
		t.Fatalf("purged %+v, left %+v", p, entries)
	}
	// A soft opt-in after a consent grant does not replace it: they are
	// different bases, and journeys that need consent still rest on the
	// grant. It used to be purged as replaced.
	if _, err := s.UpsertCustomer(ctx, journey.Customer{ID: "c-2", Email: "ola@example.no"}, "crm"); err != nil {
		t.Fatal(err)
	}
	soft := policy.ConsentEntry{Channel: "email", Topic: policy.AllTopics, Action: policy.Grant, Basis: policy.BasisSoftOptIn,
		At: old.Add(day), Source: policy.SourceImport, SaleID: "o-1", SaleAt: old.Add(day), ProductGroup: "home"}
	if _, err := s.RecordConsent(ctx, "c-2", []policy.ConsentEntry{entry(policy.Grant, old), soft}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retain(ctx, now, store.Retention{Ledger: 400 * day, Consent: 2 * 365 * day}, nil); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.ConsentEntries(ctx, "c-2"); len(e) != 2 {
		t.Fatalf("a consent grant followed by a soft opt-in: left %+v, want both", e)
	}
}
