package simulate

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
)

// The shipped journeys, simulated against their own schema, policy and
// templates.
func shipped(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load(os.DirFS("../../journeys"), "journeys")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func simulate(t *testing.T, c *catalog.Catalog, id string, cust journey.Customer, start time.Time, events ...journey.Event) []Line {
	t.Helper()
	j, ok := c.Journey(id)
	if !ok {
		t.Fatalf("no journey %s", id)
	}
	lines, err := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: cust, Events: events, Start: start, Days: 40})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func kari() journey.Customer {
	return journey.Customer{ID: "c-1001", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Consent: map[string]bool{"email": true, "push": true},
		Attributes: map[string]any{"first_name": "Kari", "last_name": "Nordmann", "plan": "home", "segment": "family",
			"advisor_name": "Ingrid Solberg", "advisor_phone": "+47 22 00 10 01", "loyalty_points": 1200.0,
			"customer_since": "2024-05-01T00:00:00Z"}}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func sends(lines []Line) []Line {
	var out []Line
	for _, l := range lines {
		if l.Kind == "send" {
			out = append(out, l)
		}
	}
	return out
}

func last(lines []Line) Line { return lines[len(lines)-1] }

func TestRenewalReminder(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	ev := journey.Event{ID: "e-1", Type: "policy.renewal_scheduled", At: at("2026-03-01T10:00:00Z"),
		Data: map[string]any{"policy_id": "p-9", "product": "innbo", "renews_at": "2026-04-01T00:00:00Z"}}
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{}, ev)
	s := sends(lines)
	if len(s) != 2 {
		t.Fatalf("sends: %+v", lines)
	}
	// 14 days before 1 April at 09:00 Oslo is 18 March 08:00 UTC.
	if !s[0].At.Equal(at("2026-03-18T08:00:00Z")) || s[0].Decision != "allow" || s[0].Channel != "email" ||
		s[0].Locale != "nb" || s[0].Subject != "Innboforsikringen din fornyes 1. april" {
		t.Errorf("reminder: %+v", s[0])
	}
	// No renewal within 7 days: the family gets the family nudge by push.
	if s[1].Channel != "push" || s[1].Template != "renewal-nudge-family" || s[1].Decision != "allow" {
		t.Errorf("nudge: %+v", s[1])
	}
	if l := last(lines); l.Kind != "done" || l.Reason != "exit" {
		t.Errorf("last: %+v", l)
	}
}

func TestRenewalGoalStopsTheNudge(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{},
		journey.Event{ID: "e-1", Type: "policy.renewal_scheduled", At: at("2026-03-01T10:00:00Z"),
			Data: map[string]any{"policy_id": "p-9", "product": "innbo", "renews_at": "2026-04-01T00:00:00Z"}},
		journey.Event{ID: "e-2", Type: "policy.renewed", At: at("2026-03-20T12:00:00Z"), Data: map[string]any{"policy_id": "p-9"}})
	if n := len(sends(lines)); n != 1 {
		t.Fatalf("%d sends, want only the reminder: %+v", n, lines)
	}
	if l := last(lines); l.Reason != "goal" {
		t.Fatalf("last: %+v", l)
	}
}

func TestRenewalQuietHoursDeferToMorning(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	// Renewal in three days, scheduled at 23:30 Oslo: the reminder is due
	// at once (two weeks before is past) but waits for 08:00.
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{},
		journey.Event{ID: "e-1", Type: "policy.renewal_scheduled", At: at("2026-03-01T22:30:00Z"),
			Data: map[string]any{"policy_id": "p-9", "product": "bil", "renews_at": "2026-03-04T00:00:00Z"}})
	s := sends(lines)
	if s[0].Decision != "defer" || s[0].Reason != "quiet_hours" || !s[0].Until.Equal(at("2026-03-02T07:00:00Z")) {
		t.Fatalf("first ask: %+v", s[0])
	}
	if s[1].Decision != "allow" || !s[1].At.Equal(at("2026-03-02T07:00:00Z")) {
		t.Fatalf("second ask: %+v", s[1])
	}
}

func TestServiceIntroduction(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "service-introduction", kari(), time.Time{},
		journey.Event{ID: "e-1", Type: "customer.signed_up", At: at("2026-03-02T09:00:00Z"), Data: map[string]any{"plan": "home"}})
	s := sends(lines)
	if len(s) != 2 || s[0].Template != "advisor-intro" || !strings.Contains(s[0].Subject, "møt Ingrid Solberg") {
		t.Fatalf("sends: %+v", s)
	}
	// Not onboarded after 5 days: a follow-up at the next 10:00 on the preferred
	// channel (email: no preference set).
	if s[1].Template != "advisor-follow-up" || s[1].Channel != "email" || !s[1].At.Equal(at("2026-03-08T09:00:00Z")) {
		t.Fatalf("follow-up: %+v", s[1])
	}
}

func TestServiceIntroductionSettledIn(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "service-introduction", kari(), time.Time{},
		journey.Event{ID: "e-1", Type: "customer.signed_up", At: at("2026-03-02T09:00:00Z"), Data: map[string]any{"plan": "home"}},
		journey.Event{ID: "e-2", Type: "onboarding.completed", At: at("2026-03-03T09:00:00Z")})
	if n := len(sends(lines)); n != 1 || last(lines).Step != "settled-in" {
		t.Fatalf("lines: %+v", lines)
	}
}

func TestSegmentOnboardingTracks(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	signup := journey.Event{ID: "e-1", Type: "customer.signed_up", At: at("2026-03-02T09:00:00Z"), Data: map[string]any{"plan": "home"}}
	for segment, want := range map[string]string{"family": "onboarding-family", "business": "onboarding-business", "single": "onboarding-standard"} {
		cust := kari()
		cust.Attributes["segment"] = segment
		s := sends(simulate(t, c, "segment-onboarding", cust, time.Time{}, signup))
		if len(s) != 2 || s[0].Template != want || s[1].Template != "onboarding-nudge" {
			t.Errorf("%s: %+v", segment, s)
		}
	}
}

func TestSegmentOnboardingRespectsTopicOptOut(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	cust := kari()
	cust.TopicsOptedOut = []string{"onboarding"}
	s := sends(simulate(t, c, "segment-onboarding", cust, time.Time{},
		journey.Event{ID: "e-1", Type: "customer.signed_up", At: at("2026-03-02T09:00:00Z"), Data: map[string]any{"plan": "home"}}))
	for _, l := range s {
		if l.Decision != "suppress" || l.Reason != "topic_opted_out" {
			t.Fatalf("send: %+v", l)
		}
	}
}

func TestCheckinOnSchedule(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "checkin", kari(), at("2026-03-15T00:00:00Z"))
	s := sends(lines)
	// First day of the next quarter, 10:00 Oslo (summer time).
	if len(s) != 1 || !s[0].At.Equal(at("2026-04-01T08:00:00Z")) || !strings.Contains(s[0].Subject, "savnet") {
		t.Fatalf("lines: %+v", lines)
	}
}

func TestCheckinLeavesNewCustomersAlone(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	cust := kari()
	cust.Attributes["customer_since"] = "2026-10-01T00:00:00Z"
	lines := simulate(t, c, "checkin", cust, at("2026-11-15T00:00:00Z"))
	if len(sends(lines)) != 0 || last(lines).Reason != "not_in_audience" {
		t.Fatalf("lines: %+v", lines)
	}
}

func TestLoyaltyBenefitPreferredPush(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	cust := kari()
	cust.PreferredChannel = "push"
	s := sends(simulate(t, c, "loyalty-benefit", cust, at("2026-03-02T12:00:00Z")))
	if len(s) != 1 || s[0].Channel != "push" || !s[0].At.Equal(at("2026-03-03T08:30:00Z")) || !strings.Contains(s[0].Subject, "takk") {
		t.Fatalf("sends: %+v", s)
	}
	// Without push consent the benefit falls back to email.
	cust.Consent["push"] = false
	s = sends(simulate(t, c, "loyalty-benefit", cust, at("2026-03-02T12:00:00Z")))
	if len(s) != 1 || s[0].Channel != "email" || !strings.Contains(s[0].Subject, "1\u00a0200 poeng") {
		t.Fatalf("fallback: %+v", s)
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	j, _ := c.Journey("renewal-reminder")
	for name, o := range map[string]Options{
		"unknown event type": {Events: []journey.Event{{ID: "e", Type: "nope", At: time.Now()}}},
		"wrong field type":   {Events: []journey.Event{{ID: "e", Type: "policy.renewed", At: time.Now(), Data: map[string]any{"policy_id": 3.0}}}},
		"other customer":     {Events: []journey.Event{{ID: "e", Type: "policy.renewed", CustomerID: "c-2", At: time.Now()}}},
		"nothing to start":   {},
	} {
		o.Journey, o.Rules, o.Customer = j, *c.Rules, kari()
		if _, err := Run(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
