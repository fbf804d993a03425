package simulate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Simulate applies the journey's holdout: a held-out customer's timeline
// shows each message the run would have sent, sends nothing (nothing
// counts toward caps) and still ends on the goal; a treated customer's is
// as without a holdout.
func TestSimulateAppliesHoldout(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	plain, ok := c.Journey("renewal-reminder")
	if !ok {
		t.Fatal("no renewal-reminder")
	}
	j, errs := journey.Parse(plain.File, []byte(string(plain.Source)+"holdout: 50%\n"), plain.Schema, plain.Location)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	cust := func(held bool) journey.Customer {
		k := kari()
		for i := 0; ; i++ {
			k.ID = fmt.Sprintf("c-%d", i)
			if journey.HeldOut(j.ID, k.ID, j.Holdout) == held {
				return k
			}
		}
	}
	events := []journey.Event{
		{ID: "e-1", Type: "policy.renewal_scheduled", At: at("2026-03-01T10:00:00Z"),
			Data: map[string]any{"policy_id": "p-9", "product": "innbo", "renews_at": "2026-04-01T00:00:00Z"}},
		{ID: "e-2", Type: "policy.renewed", At: at("2026-03-20T12:00:00Z"), Data: map[string]any{"policy_id": "p-9"}},
	}
	run := func(k journey.Customer) []Line {
		for i := range events {
			events[i].CustomerID = k.ID
		}
		lines, err := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: k, Events: events, Days: 40})
		if err != nil {
			t.Fatal(err)
		}
		return lines
	}
	held := run(cust(true))
	s := sends(held)
	if len(s) != 1 || s[0].Decision != "held_out" || s[0].Template != "renewal-reminder" || s[0].Subject != "" ||
		!strings.Contains(s[0].Note, "held out (holdout 50%): would have sent") {
		t.Fatalf("held-out sends: %+v", s)
	}
	if l := last(held); l.Reason != string(journey.OutcomeGoal) {
		t.Fatalf("held-out run ended %+v, want the goal", l)
	}
	treated := sends(run(cust(false)))
	if len(treated) != 1 || treated[0].Decision != string(policy.Allow) {
		t.Fatalf("treated sends: %+v", treated)
	}
}
