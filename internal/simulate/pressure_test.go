package simulate

import (
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Simulate applies adaptive pressure: a customer who never engages hears
// less, and the timeline says why.
func TestSimulateAppliesAdaptivePressure(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	start := at("2026-03-02T09:00:00Z")
	events := []journey.Event{
		{ID: "e-1", Type: "customer.signed_up", At: start, Data: map[string]any{"plan": "home"}},
		renewalScheduled("e-2", "p-1", "2026-03-02T09:00:00Z", "2026-03-20T00:00:00Z"),
	}
	allowed := func(rules policy.Rules) (int, []Line) {
		lines, err := Run(Options{Journeys: c.Journeys, Rules: rules, Templates: c.Templates, Customer: kari(), Events: events, Days: 30})
		if err != nil {
			t.Fatalf("%v\n%s", err, dump(lines))
		}
		n := 0
		for _, l := range sends(lines) {
			if l.Decision == string(policy.Allow) {
				n++
			}
		}
		return n, lines
	}
	plain, _ := allowed(*c.Rules)
	rules := *c.Rules
	rules.Adaptive = &policy.Adaptive{HalveAfter: 1, Floor: 1, Grace: time.Hour}
	pressed, lines := allowed(rules)
	if pressed >= plain {
		t.Errorf("%d messages allowed under pressure, %d without: pressure held nothing back\n%s", pressed, plain, dump(lines))
	}
	found := false
	for _, l := range sends(lines) {
		if strings.Contains(l.Facts, "ignored since") && strings.Contains(l.Facts, "caps halved") {
			found = true
		}
	}
	if !found {
		t.Errorf("no send line says the caps were lowered:\n%s", dump(lines))
	}
}
