package policy

import (
	"strings"
	"testing"
	"time"
)

func consentRules(t *testing.T) Rules {
	r := houseRules(t)
	r.Topics = map[string]Topic{
		"renewal": {Kind: TopicService},
		"offers":  {Kind: TopicMarketing, ProductGroups: []string{"home", "contents"}},
		"news":    {Kind: TopicMarketing},
	}
	return r
}

func TestConsentLedgerDecides(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	d := func(s string) time.Time { return at(t, oslo, s+" 10:00") }
	sale := func(id, on, group string) ConsentEntry {
		return ConsentEntry{Channel: Email, Topic: AllTopics, Action: Grant, Basis: BasisSoftOptIn, At: d(on), Source: SourceAPI,
			SaleID: id, SaleAt: d(on), ProductGroup: group}
	}
	consent := ConsentEntry{Channel: Email, Topic: AllTopics, Action: Grant, Basis: BasisConsent, At: d("2026-01-05"),
		Source: SourcePreferenceCentre, Actor: "customer", Wording: "Yes, email me offers", WordingVersion: "v3"}
	withdraw := func(ch, topic, on string) ConsentEntry {
		return ConsentEntry{Channel: ch, Topic: topic, Action: Withdraw, Basis: BasisConsent, At: d(on), Source: SourcePreferenceCentre, Actor: "customer"}
	}
	soft := []Basis{BasisConsent, BasisSoftOptIn}
	tests := []struct {
		name    string
		entries []ConsentEntry
		topic   string
		bases   []Basis
		channel string
		verdict Verdict
		reason  Reason
		basis   Basis
		fact    string
	}{
		{name: "soft opt-in from a sale the topic covers", entries: []ConsentEntry{sale("o-123", "2026-02-01", "home")},
			topic: "offers", bases: soft, verdict: Allow, reason: ReasonOK, basis: BasisSoftOptIn,
			fact: "soft opt-in from sale o-123, 2026-02-01, product group home"},
		{name: "soft opt-in refused for a product group outside the sale", entries: []ConsentEntry{sale("o-9", "2026-02-01", "car")},
			topic: "offers", bases: soft, verdict: Suppress, reason: ReasonSoftOptInNotCovered,
			fact: "sale o-9, 2026-02-01 is in product group car"},
		{name: "soft opt-in only where the journey says it may be used", entries: []ConsentEntry{sale("o-123", "2026-02-01", "home")},
			topic: "offers", bases: []Basis{BasisConsent}, verdict: Suppress, reason: ReasonNoConsent, fact: "no consent recorded"},
		{name: "soft opt-in ends with an opt-out", entries: []ConsentEntry{sale("o-123", "2026-02-01", "home"), withdraw(Email, AllTopics, "2026-02-10")},
			topic: "offers", bases: soft, verdict: Suppress, reason: ReasonNoConsent, fact: "soft opt-in ended: marketing withdrawn 2026-02-10"},
		{name: "a sale after an opt-out does not undo it", entries: []ConsentEntry{withdraw(AllChannels, AllTopics, "2026-01-10"), sale("o-123", "2026-02-01", "home")},
			topic: "offers", bases: soft, verdict: Suppress, reason: ReasonNoConsent},
		{name: "soft opt-in on email does not reach push", entries: []ConsentEntry{sale("o-123", "2026-02-01", "home")},
			topic: "offers", bases: soft, channel: Push, verdict: Suppress, reason: ReasonNoConsent},
		{name: "an undeclared topic may rely on consent only", entries: []ConsentEntry{sale("o-123", "2026-02-01", "home")},
			topic: "mystery", bases: soft, verdict: Suppress, reason: ReasonNoConsent},
		{name: "consent names when, where and which wording", entries: []ConsentEntry{consent},
			topic: "news", verdict: Allow, reason: ReasonOK, basis: BasisConsent,
			fact: "consent given 2026-01-05 (preference centre by customer, wording v3)"},
		{name: "consent withdrawn", entries: []ConsentEntry{consent, withdraw(Email, AllTopics, "2026-02-01")},
			topic: "news", verdict: Suppress, reason: ReasonNoConsent, fact: "marketing withdrawn 2026-02-01 (preference centre by customer)"},
		{name: "consent withdrawn on every channel", entries: []ConsentEntry{consent, withdraw(AllChannels, AllTopics, "2026-02-01")},
			topic: "news", verdict: Suppress, reason: ReasonNoConsent},
		{name: "consent given again after a withdrawal", entries: []ConsentEntry{withdraw(Email, AllTopics, "2025-12-01"), consent},
			topic: "news", verdict: Allow, reason: ReasonOK, basis: BasisConsent},
		{name: "a topic opt-out holds over consent", entries: []ConsentEntry{consent, withdraw(AllChannels, "news", "2026-02-01")},
			topic: "news", verdict: Suppress, reason: ReasonTopicOptedOut, fact: "opted out of news 2026-02-01"},
		{name: "opted back in to the topic", entries: []ConsentEntry{consent, withdraw(AllChannels, "news", "2026-02-01"),
			{Channel: AllChannels, Topic: "news", Action: Grant, Basis: BasisConsent, At: d("2026-02-03"), Source: SourcePreferenceCentre}},
			topic: "news", verdict: Allow, reason: ReasonOK, basis: BasisConsent},
		{name: "a service topic needs no marketing consent", topic: "renewal", verdict: Allow, reason: ReasonOK, basis: BasisService,
			fact: "service topic renewal: needs no marketing consent"},
		{name: "a service topic still honours its opt-out", entries: []ConsentEntry{withdraw(AllChannels, "renewal", "2026-02-01")},
			topic: "renewal", verdict: Suppress, reason: ReasonTopicOptedOut},
		{name: "no sale, no consent", topic: "offers", bases: soft, verdict: Suppress, reason: ReasonNoConsent,
			fact: "no consent recorded; no sale to rest a soft opt-in on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := tt.channel
			if ch == "" {
				ch = Email
			}
			rel := reachable()
			rel.Consent = tt.entries
			if rel.Consent == nil {
				rel.Consent = []ConsentEntry{}
			}
			got := Decide(consentRules(t), rel, nil, nil, Request{Key: "k", Channel: ch, Topic: tt.topic, Bases: tt.bases}, noon)
			if got.Verdict != tt.verdict || got.Reason != tt.reason {
				t.Fatalf("got %s (%s: %s), want %s (%s)", got.Verdict, got.Reason, got.Detail.BasisFact, tt.verdict, tt.reason)
			}
			if got.Detail.Basis != tt.basis {
				t.Errorf("basis %q, want %q", got.Detail.Basis, tt.basis)
			}
			if !strings.Contains(got.Detail.BasisFact, tt.fact) {
				t.Errorf("facts %q, want them to say %q", got.Detail.BasisFact, tt.fact)
			}
			if tt.verdict == Allow && !strings.Contains(got.Detail.String(), "basis: "+got.Detail.BasisFact) {
				t.Errorf("Detail.String() %q leaves out the basis", got.Detail.String())
			}
		})
	}
}

// A channel list goes to the first channel with a basis; the basis named
// is that channel's.
func TestBasisFollowsTheChannel(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	rel := reachable()
	rel.Consent = []ConsentEntry{{Channel: Email, Topic: AllTopics, Action: Grant, Basis: BasisSoftOptIn, At: noon.Add(-48 * time.Hour),
		Source: SourceAPI, SaleID: "o-1", SaleAt: noon.Add(-48 * time.Hour), ProductGroup: "home"}}
	got := Decide(consentRules(t), rel, nil, nil, Request{Key: "k", Channel: Push, Fallback: []string{Email}, Topic: "offers",
		Bases: []Basis{BasisConsent, BasisSoftOptIn}}, noon)
	if got.Verdict != Allow || got.Channel != Email || got.Detail.Basis != BasisSoftOptIn {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(strings.Join(got.Detail.Skipped, ";"), "push: no_consent") {
		t.Errorf("skipped %v, want push: no_consent", got.Detail.Skipped)
	}
}

func TestConsentEntryValidate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	good := ConsentEntry{Channel: Email, Topic: AllTopics, Action: Grant, Basis: BasisConsent, At: now, Source: SourceAPI, Wording: "Yes", WordingVersion: "v1"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*ConsentEntry)
		want string
	}{
		{"soft opt-in without its sale", func(e *ConsentEntry) { e.Basis = BasisSoftOptIn }, "rests on a sale"},
		{"consent without wording", func(e *ConsentEntry) { e.Wording = "" }, "wording the customer agreed to"},
		{"unknown channel", func(e *ConsentEntry) { e.Channel = "sms" }, `channel "sms"`},
		{"no time", func(e *ConsentEntry) { e.At = time.Time{} }, "time is missing"},
		{"unknown source", func(e *ConsentEntry) { e.Source = "rumour" }, `source "rumour"`},
		{"soft opt-in for one topic", func(e *ConsentEntry) {
			e.Basis, e.SaleID, e.SaleAt, e.ProductGroup, e.Topic = BasisSoftOptIn, "o-1", now, "home", "offers"
		}, "its topic must be *"},
	}
	for _, tt := range tests {
		e := good
		tt.edit(&e)
		err := e.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestTopicsOptedOutFollowsTheLatestEntry(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(topic string, a ConsentAction, days int) ConsentEntry {
		return ConsentEntry{Channel: AllChannels, Topic: topic, Action: a, Basis: BasisConsent, At: t0.AddDate(0, 0, days)}
	}
	// Out of order on purpose: the ledger's order is by time.
	got := TopicsOptedOut([]ConsentEntry{e("news", Grant, 5), e("news", Withdraw, 1), e("offers", Withdraw, 2), e("loyalty", Withdraw, 3)})
	if strings.Join(got, ",") != "loyalty,offers" {
		t.Fatalf("got %v", got)
	}
}
