package simulate

import (
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/journey"
)

func renewalScheduled(id, policy, at, renews string) journey.Event {
	return journey.Event{ID: id, Type: "policy.renewal_scheduled", At: parseAt(at),
		Data: map[string]any{"policy_id": policy, "product": "innbo", "renews_at": renews}}
}

func parseAt(s string) time.Time { return at(s) }

// TestEventsAreRoutedByKey: a renewal of another policy is no goal for
// this one, exactly as production routes it (before, any policy.renewed
// ended the run).
func TestEventsAreRoutedByKey(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{},
		renewalScheduled("e-1", "p-9", "2026-03-01T10:00:00Z", "2026-04-01T00:00:00Z"),
		journey.Event{ID: "e-2", Type: "policy.renewed", At: at("2026-03-20T12:00:00Z"), Data: map[string]any{"policy_id": "p-1"}})
	s := sends(lines)
	if len(s) != 2 || s[1].Template != "renewal-nudge-family" {
		t.Fatalf("sends %+v: the renewal of p-1 must not stop p-9's nudge\n%+v", s, lines)
	}
	if l := last(lines); l.Reason != "exit" || l.Key != "p-9" {
		t.Fatalf("last %+v", l)
	}
	found := false
	for _, l := range lines {
		if l.Kind == "event" && l.Event == "policy.renewed" && l.Key == "p-1" && strings.Contains(l.Note, "no run in progress") {
			found = true
		}
	}
	if !found {
		t.Errorf("the renewal of p-1 is not shown as reaching no run:\n%+v", lines)
	}
}

// TestEachKeyRunsOnItsOwn: a second policy starts its own run, and the
// relationship policy spaces the two reminders.
func TestEachKeyRunsOnItsOwn(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{},
		renewalScheduled("e-1", "p-9", "2026-03-01T10:00:00Z", "2026-04-01T00:00:00Z"),
		renewalScheduled("e-2", "p-10", "2026-03-01T11:00:00Z", "2026-04-01T00:00:00Z"),
		journey.Event{ID: "e-3", Type: "policy.renewed", At: at("2026-03-19T12:00:00Z"), Data: map[string]any{"policy_id": "p-9"}},
		journey.Event{ID: "e-4", Type: "policy.renewed", At: at("2026-03-19T12:00:00Z"), Data: map[string]any{"policy_id": "p-10"}})
	var allowed []Line
	for _, l := range sends(lines) {
		if l.Decision == "allow" {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) != 2 || allowed[0].Key == allowed[1].Key || allowed[1].At.Sub(allowed[0].At) < 24*time.Hour {
		t.Fatalf("allowed sends %+v: want one reminder per policy, a day apart (min_gap)\n%+v", allowed, lines)
	}
	done := 0
	for _, l := range lines {
		if l.Kind == "done" && l.Reason == "goal" {
			done++
		}
	}
	if done != 2 {
		t.Fatalf("%d runs reached their goal, want 2:\n%+v", done, lines)
	}
}

// TestNewerTriggerMovesTheReminder: a new renewal date for the same policy
// updates the run in progress (the documented rule): the reminder goes
// two weeks before the new date.
func TestNewerTriggerMovesTheReminder(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	lines := simulate(t, c, "renewal-reminder", kari(), time.Time{},
		renewalScheduled("e-1", "p-9", "2026-03-01T10:00:00Z", "2026-04-01T00:00:00Z"),
		renewalScheduled("e-2", "p-9", "2026-03-05T10:00:00Z", "2026-04-08T00:00:00Z"))
	s := sends(lines)
	if len(s) == 0 || !s[0].At.Equal(at("2026-03-25T08:00:00Z")) || !strings.Contains(s[0].Subject, "8. april") {
		t.Fatalf("first send %+v, want the reminder on 25 March for 8 April\n%+v", s, lines)
	}
	starts := 0
	for _, l := range lines {
		if l.Kind == "start" {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("%d runs started, want the one run updated", starts)
	}
}

// TestTimelineUpToAnError: a run that fails shows what happened before,
// and where and why it stopped.
func TestTimelineUpToAnError(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	src := "id: fails\nname: Fails\ntopic: service\ntrigger: { event: policy.renewal_scheduled }\nsteps:\n" +
		"  - id: first\n    send: { channel: email, template: renewal-reminder }\n" +
		"  - id: later\n    wait: { duration: 2d }\n" +
		"  - id: check\n    branch:\n      - when: int(event.policy_id) > 3\n        goto: done\n" +
		"  - id: done\n    exit: {}\n"
	j, errs := journey.Parse("fails.yaml", []byte(src), c.Schema, c.Rules.Location)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	lines, err := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: kari(),
		Events: []journey.Event{renewalScheduled("e-1", "p-9", "2026-03-02T10:00:00Z", "2026-04-01T00:00:00Z")}})
	if err == nil || !strings.Contains(err.Error(), "check") {
		t.Fatalf("err = %v", err)
	}
	if len(sends(lines)) != 1 {
		t.Fatalf("the timeline before the error is lost: %+v", lines)
	}
	if l := last(lines); l.Kind != "error" || l.Step != "check" || !l.At.Equal(at("2026-03-04T10:00:00Z")) || !strings.Contains(l.Note, "fails.yaml:12:15: int(event.policy_id) > 3") {
		t.Fatalf("last line %+v, want the error at the branch", l)
	}
}

// TestScheduleThatNeverFires: a definition that slipped past validation
// (an older one, rebuilt leniently) never fires; simulate says so instead
// of sending in year 1.
func TestScheduleThatNeverFires(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	src := "id: never\nname: Never\ntopic: service\ntrigger: { schedule: { cron: \"0 9 31 2 *\" } }\nsteps:\n" +
		"  - id: hello\n    send: { channel: email, template: checkin }\n"
	j, err := journey.Bundle{File: "never.yaml", Journey: []byte(src), SchemaFile: c.Schema.File, Schema: c.Schema.Source, Timezone: "Europe/Oslo"}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	lines, err := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: kari(), Start: at("2026-03-01T00:00:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sends(lines)) != 0 || last(lines).Kind != "end" || !strings.Contains(last(lines).Note, "never fires") {
		t.Fatalf("lines %+v", lines)
	}
}

// TestSendOutcomeAndReceivedEvent: the follow-up goes only to a customer
// who got the first message, and the answer that ended a wait_for is in
// the message after it.
func TestSendOutcomeAndReceivedEvent(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	cust := kari()
	cust.Attributes["customer_since"] = "2024-01-01T00:00:00Z"
	lines := simulate(t, c, "checkin", cust, at("2026-03-31T12:00:00Z"),
		journey.Event{ID: "e-1", Type: "survey.answered", At: at("2026-04-02T12:00:00Z"), Data: map[string]any{"survey": "checkin", "answer": "Raskere svar på skader"}})
	s := sends(lines)
	if len(s) != 2 || s[1].Template != "checkin-thanks" || !strings.Contains(s[1].Text, "Raskere svar på skader") {
		t.Fatalf("sends %+v", s)
	}
	cust.Consent["email"] = false
	lines = simulate(t, c, "checkin", cust, at("2026-03-31T12:00:00Z"))
	if l := last(lines); l.Kind != "done" || l.Step != "not-asked" {
		t.Fatalf("without consent the ask is suppressed and the run must not wait for an answer: %+v", lines)
	}
}

var _ = catalog.Load

// TestALoopWithoutTimePassingStops: a daily loop (wait at_local 09:00,
// send, goto the wait) for a customer the message cannot reach: at 09:00
// sharp the wait ends at once, the send is suppressed at the same
// instant, and round it goes. simulate grew until it ran out of memory;
// it stops, and says which journey went round without time passing.
func TestALoopWithoutTimePassingStops(t *testing.T) {
	t.Parallel()
	c := shipped(t)
	src := "id: daily\nname: Daily\ntopic: service\ntrigger: { event: policy.renewal_scheduled }\nsteps:\n" +
		"  - id: nine\n    wait: { at_local: \"09:00\" }\n" +
		"  - id: nudge\n    send: { channel: email, template: renewal-reminder }\n    goto: nine\n"
	j, errs := journey.Parse("daily.yaml", []byte(src), c.Schema, c.Rules.Location)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cust := kari()
	cust.Email = "" // no address: every send is suppressed at once
	done := make(chan error, 1)
	go func() {
		_, err := Run(Options{Journey: j, Rules: *c.Rules, Templates: c.Templates, Customer: cust, Days: 3,
			Events: []journey.Event{renewalScheduled("e-1", "p-9", "2026-03-02T08:00:00Z", "2026-04-01T00:00:00Z")}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "daily") || !strings.Contains(err.Error(), "without time passing") {
			t.Fatalf("err = %v, want the journey named and the loop explained", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the simulation of a loop without time passing did not stop")
	}
}
