package simulate

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// TestAllJourneysShareOnePolicy: a customer who signs up, has a renewal
// coming and enough loyalty points is in four journeys at once. The
// simulation runs them together, as production does: no two messages
// closer than the minimum gap, the later ones deferred with the reason,
// and every journey's line says which journey it is.
func TestAllJourneysShareOnePolicy(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	start := at("2026-03-02T09:00:00Z")
	events := []journey.Event{
		{ID: "e-1", Type: "customer.signed_up", At: start, Data: map[string]any{"plan": "home"}},
		renewalScheduled("e-2", "p-1", "2026-03-02T09:00:00Z", "2026-03-20T00:00:00Z"),
	}
	lines, err := Run(Options{Journeys: c.Journeys, Rules: *c.Rules, Templates: c.Templates, Customer: kari(), Events: events, Days: 30})
	if err != nil {
		t.Fatalf("%v\n%+v", err, lines)
	}
	journeys := map[string]bool{}
	var sent []Line
	deferredByOthers := 0
	for _, l := range lines {
		if l.Journey != "" {
			journeys[l.Journey] = true
		}
		if l.Kind != "send" {
			continue
		}
		switch l.Decision {
		case string(policy.Allow):
			sent = append(sent, l)
		case string(policy.Defer):
			if l.Reason == string(policy.ReasonMinGap) || l.Reason == string(policy.ReasonPriority) {
				deferredByOthers++
			}
		}
	}
	for _, id := range []string{"renewal-reminder", "segment-onboarding", "service-introduction", "loyalty-benefit"} {
		if !journeys[id] {
			t.Errorf("no line from %s", id)
		}
	}
	if len(sent) < 3 || deferredByOthers == 0 {
		t.Fatalf("%d sent, %d deferred by the gap or a higher priority:\n%s", len(sent), deferredByOthers, dump(lines))
	}
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].At.Sub(sent[i-1].At); gap < c.Rules.MinGap {
			t.Errorf("%s/%s and %s/%s went out %s apart, closer than min_gap %s", sent[i-1].Journey, sent[i-1].Step, sent[i].Journey, sent[i].Step, gap, c.Rules.MinGap)
		}
	}
	// The same journeys one at a time send more, and sooner: the policy
	// between journeys is what holds messages back.
	alone := 0
	for _, j := range c.Journeys {
		ls, _ := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: kari(), Events: events, Days: 30})
		for _, l := range sends(ls) {
			if l.Decision == string(policy.Allow) && l.At.Before(start.Add(24*time.Hour)) {
				alone++
			}
		}
	}
	if alone < 2 {
		t.Errorf("only %d messages on the first day with journeys simulated alone", alone)
	}
}

func TestAudiencePreview(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	b, err := os.ReadFile("../../journeys/demo/customers.json")
	if err != nil {
		t.Fatal(err)
	}
	var customers []journey.Customer
	if err := json.Unmarshal(b, &customers); err != nil {
		t.Fatal(err)
	}
	counts := Audience(c.Journeys, customers, at("2026-03-01T00:00:00Z"))
	byID := map[string]AudienceCount{}
	for _, ac := range counts {
		byID[ac.Journey] = ac
		if ac.Total != len(customers) {
			t.Errorf("%s: total %d", ac.Journey, ac.Total)
		}
	}
	// Only Kari has 1,000 loyalty points; home and car plans renew; no
	// audience lets everyone in.
	if ac := byID["loyalty-benefit"]; ac.Matched != 1 || ac.Names[0] != "Kari Nordmann (c-1001)" {
		t.Errorf("loyalty-benefit: %+v", ac)
	}
	if ac := byID["renewal-reminder"]; ac.Matched != 12 {
		t.Errorf("renewal-reminder: %+v", ac)
	}
	if ac := byID["segment-onboarding"]; ac.Matched != len(customers) || ac.Audience != "" {
		t.Errorf("segment-onboarding: %+v", ac)
	}
	bad := append(customers[:1:1], journey.Customer{ID: "x", Attributes: map[string]any{"loyalty_points": "many"}})
	if ac := Audience(c.Journeys[:1], bad, time.Now())[0]; ac.Undecided != 1 || len(ac.Problems) != 1 {
		t.Errorf("a customer the schema refuses: %+v", ac)
	}
}

func dump(lines []Line) string {
	b, _ := json.MarshalIndent(lines, "", " ")
	return string(b)
}
