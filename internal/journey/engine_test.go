package journey

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func oslo(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func renewalEvent(renews time.Time) *Event {
	return &Event{ID: "e-1", Type: "policy.renewal_scheduled", CustomerID: "c-1", At: renews.Add(-30 * 24 * time.Hour),
		Data: map[string]any{"policy_id": "p-9", "renews_at": renews.Format(time.RFC3339)}}
}

func customer(plan, segment string) Customer {
	return Customer{ID: "c-1", Email: "kari@example.no", Locale: "nb", Timezone: "Europe/Oslo",
		Attributes: map[string]any{"plan": plan, "segment": segment, "first_name": "Kari"}}
}

func TestRenewalJourneyPath(t *testing.T) {
	t.Parallel()
	j := mustParse(t, renewal)
	loc := oslo(t)
	renews := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	st, act, err := j.Start(customer("home", "family"), renewalEvent(renews), now)
	if err != nil {
		t.Fatal(err)
	}
	// 14 days before 1 April 00:00 UTC is 18 March 01:00 in Oslo; at_local
	// moves it to 09:00 Oslo that day.
	wantWake := time.Date(2026, 3, 18, 9, 0, 0, 0, loc)
	if act.Kind != ActSleep || act.Step != "wait-until-two-weeks-before" || !act.Until.Equal(wantWake) {
		t.Fatalf("first action %+v, want sleep until %s", act, wantWake)
	}
	// A timer that fires early changes nothing.
	if _, again, _ := j.Next(st, Occurrence{Kind: OccElapsed}, wantWake.Add(-time.Minute)); !reflect.DeepEqual(again, act) {
		t.Fatalf("early timer moved the run: %+v", again)
	}
	st, act, err = j.Next(st, Occurrence{Kind: OccElapsed}, wantWake)
	if err != nil {
		t.Fatal(err)
	}
	if act.Kind != ActSend || act.Send.Template != "renewal-reminder" || act.Send.Purpose != "renewal:p-9" ||
		act.Send.Priority != "high" || act.Send.Topic != "service" || act.Send.Visit != 1 || act.Send.Channel != "email" {
		t.Fatalf("send action %+v %+v", act, act.Send)
	}
	sentAt := wantWake.Add(time.Minute)
	st, act, err = j.Next(st, Occurrence{Kind: OccSent}, sentAt)
	if err != nil {
		t.Fatal(err)
	}
	if act.Kind != ActAwait || act.Event != "policy.renewed" || !act.Until.Equal(sentAt.Add(7*24*time.Hour)) {
		t.Fatalf("await action %+v", act)
	}
	// An unrelated event is ignored.
	other := &Event{ID: "e-2", Type: "order.placed", Data: map[string]any{"order_id": "o", "total": 1.0}}
	if _, again, _ := j.Next(st, Occurrence{Kind: OccEvent, Event: other}, sentAt); !reflect.DeepEqual(again, act) {
		t.Fatalf("unrelated event moved the run: %+v", again)
	}
	// Timeout: the family branch sends the family nudge, then goes to done.
	st2, act2, err := j.Next(st, Occurrence{Kind: OccElapsed}, act.Until)
	if err != nil {
		t.Fatal(err)
	}
	if act2.Kind != ActSend || act2.Step != "family-nudge" || act2.Send.Channel != "push" {
		t.Fatalf("after timeout %+v", act2)
	}
	_, act3, err := j.Next(st2, Occurrence{Kind: OccSent}, act.Until)
	if err != nil || act3.Kind != ActDone || act3.Outcome != OutcomeExit || act3.Step != "done" {
		t.Fatalf("after nudge %+v %v", act3, err)
	}
	// The goal ends the run at once, from the wait_for step.
	renewed := &Event{ID: "e-3", Type: "policy.renewed", Data: map[string]any{"policy_id": "p-9"}}
	_, act4, err := j.Next(st, Occurrence{Kind: OccEvent, Event: renewed}, sentAt)
	if err != nil || act4.Kind != ActDone || act4.Outcome != OutcomeGoal || act4.Step != "wait-for-renewal" {
		t.Fatalf("goal %+v %v", act4, err)
	}
}

func TestBranchPlainNudgeOverridesPriority(t *testing.T) {
	t.Parallel()
	j := mustParse(t, renewal)
	renews := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 3, 30, 10, 0, 0, 0, time.UTC) // two weeks before is past: send at once
	st, act, err := j.Start(customer("car", "single"), renewalEvent(renews), now)
	if err != nil || act.Kind != ActSend {
		t.Fatalf("start %+v %v", act, err)
	}
	st, act, _ = j.Next(st, Occurrence{Kind: OccSent}, now)
	_, act, _ = j.Next(st, Occurrence{Kind: OccElapsed}, act.Until)
	if act.Step != "plain-nudge" || act.Send.Priority != "normal" {
		t.Fatalf("plain nudge %+v %+v", act, act.Send)
	}
}

func TestAudienceExcludes(t *testing.T) {
	t.Parallel()
	j := mustParse(t, renewal)
	_, act, err := j.Start(customer("boat", "single"), renewalEvent(time.Now().Add(30*24*time.Hour)), time.Now())
	if err != nil || act.Kind != ActDone || act.Outcome != OutcomeNotInAudience {
		t.Fatalf("start %+v %v", act, err)
	}
}

func TestMissingAttributeIsAnError(t *testing.T) {
	t.Parallel()
	j := mustParse(t, renewal)
	c := customer("home", "family")
	delete(c.Attributes, "plan")
	if _, _, err := j.Start(c, renewalEvent(time.Now()), time.Now()); err == nil || !strings.Contains(err.Error(), "plan has no value") {
		t.Fatalf("start without plan: %v", err)
	}
}

func TestWaitAtLocalAcrossDST(t *testing.T) {
	t.Parallel()
	src := `id: evening
name: Evening
topic: t
trigger: { event: order.placed }
steps:
  - id: wait
    wait: { duration: 1d, at_local: "02:30" }
  - id: send
    send: { channel: email, template: x }
`
	j := mustParse(t, src)
	loc := oslo(t)
	// Saturday 28 March 2026 12:00; one day later is Sunday, whose 02:30
	// does not exist in Oslo (clocks jump 02:00 -> 03:00).
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, loc)
	_, act, err := j.Start(customer("home", ""), &Event{ID: "e", Type: "order.placed", Data: map[string]any{"order_id": "o", "total": 1.0}}, now)
	if err != nil {
		t.Fatal(err)
	}
	// 02:30 on 30 March (the first 02:30 after Sunday noon).
	if want := time.Date(2026, 3, 30, 2, 30, 0, 0, loc); !act.Until.Equal(want) {
		t.Fatalf("wake %s, want %s", act.Until, want)
	}
	// A customer in another zone wakes at their own 02:30.
	c := customer("home", "")
	c.Timezone = "America/New_York"
	_, act, _ = j.Start(c, &Event{ID: "e", Type: "order.placed", Data: map[string]any{"order_id": "o", "total": 1.0}}, now)
	ny, _ := time.LoadLocation("America/New_York")
	if want := time.Date(2026, 3, 30, 2, 30, 0, 0, ny); !act.Until.Equal(want) {
		t.Fatalf("wake %s, want %s", act.Until, want)
	}
}

func TestLoopWithWaitVisitsCount(t *testing.T) {
	t.Parallel()
	src := `id: weekly
name: Weekly
topic: t
trigger: { event: order.placed }
steps:
  - id: tell
    send: { channel: email, template: x }
  - id: pause
    wait: { duration: 7d }
  - id: again
    branch:
      - when: customer.plan == "home"
        goto: tell
  - id: stop
    exit: {}
`
	j := mustParse(t, src)
	now := time.Now()
	st, act, _ := j.Start(customer("home", ""), &Event{ID: "e", Type: "order.placed", Data: map[string]any{"order_id": "o", "total": 1.0}}, now)
	for visit := 1; visit <= 3; visit++ {
		if act.Kind != ActSend || act.Send.Visit != visit {
			t.Fatalf("visit %d: %+v", visit, act)
		}
		st, act, _ = j.Next(st, Occurrence{Kind: OccSent}, now)
		now = act.Until
		st, act, _ = j.Next(st, Occurrence{Kind: OccElapsed}, now)
	}
}

// TestNextIsDeterministic replays the same occurrences on two compilations
// of the same bundle and expects identical states: workflows rely on it.
func TestNextIsDeterministic(t *testing.T) {
	t.Parallel()
	schema := mustSchema(t)
	j := mustParse(t, renewal)
	b := Bundle{File: "j.yaml", Journey: []byte(renewal), SchemaFile: "schema.yaml", Schema: schema.Source, Timezone: "Europe/Oslo"}
	j2, err := b.Compile()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ev := renewalEvent(now.Add(20 * 24 * time.Hour))
	run := func(j *Journey) []State {
		var out []State
		st, act, _ := j.Start(customer("home", "family"), ev, now)
		out = append(out, st)
		for i := 0; act.Kind != ActDone && i < 10; i++ {
			occ := Occurrence{Kind: OccElapsed}
			if act.Kind == ActSend {
				occ = Occurrence{Kind: OccSent}
			}
			st, act, _ = j.Next(st, occ, act.Until.Add(time.Second))
			out = append(out, st)
		}
		return out
	}
	a, b2 := run(j), run(j2)
	if !reflect.DeepEqual(a, b2) || len(a) < 4 {
		t.Fatalf("runs differ or too short:\n%+v\n%+v", a, b2)
	}
}

func TestNextRejectsUnknownStep(t *testing.T) {
	t.Parallel()
	j := mustParse(t, renewal)
	st := State{Current: Action{Kind: ActSleep, Step: "renamed-away"}}
	if _, _, err := j.Next(st, Occurrence{Kind: OccElapsed}, time.Now()); err == nil || !strings.Contains(err.Error(), "does not have") {
		t.Fatalf("err = %v", err)
	}
}
