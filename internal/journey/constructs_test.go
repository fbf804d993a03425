package journey

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func renewalScheduled(id string, at, renews time.Time) *Event {
	return &Event{ID: id, Type: "policy.renewal_scheduled", CustomerID: "c-1", At: at,
		Data: map[string]any{"policy_id": "p-9", "renews_at": renews.Format(time.RFC3339)}}
}

// TestNowInConditions: a customer who enters late (the renewal is in 3
// days) skips the reminder meant for two weeks before.
func TestNowInConditions(t *testing.T) {
	t.Parallel()
	j := mustParse(t, head+
		"  - id: in-time\n"+
		"    branch:\n"+
		"      - when: event.renews_at - now < duration(\"336h\")\n"+
		"        goto: too-late\n"+
		"  - id: wait\n    wait: { until: 'event.renews_at - duration(\"336h\")' }\n"+
		"  - id: remind\n    send: { channel: email, template: t }\n    goto: done\n"+
		"  - id: too-late\n    exit: { reason: renews too soon for a reminder }\n"+
		"  - id: done\n    exit: {}\n")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	_, act, err := j.Start(customer("home", "family"), renewalScheduled("e-1", now, now.Add(3*24*time.Hour)), now)
	if err != nil || act.Kind != ActDone || act.Step != "too-late" {
		t.Fatalf("late entrant: %+v %v; want the too-late exit", act, err)
	}
	_, act, err = j.Start(customer("home", "family"), renewalScheduled("e-1", now, now.Add(40*24*time.Hour)), now)
	if err != nil || act.Kind != ActSleep || !act.Until.Equal(now.Add(26*24*time.Hour)) {
		t.Fatalf("entrant in time: %+v %v; want to sleep until two weeks before", act, err)
	}
}

const surveyJourney = "id: survey\nname: Survey\ntopic: feedback\ntrigger: { event: order.placed }\nsteps:\n" +
	"  - id: ask\n    send: { channel: email, template: survey }\n" +
	"  - id: wait-for-answer\n    wait_for: { event: survey.answered, timeout: 14d, on_timeout: no-answer }\n" +
	"  - id: which\n    branch:\n" +
	"      - when: received.survey_answered.answer == \"yes\" && has(received.survey_answered.comment)\n        goto: thanks-comment\n" +
	"      - goto: thanks\n" +
	"  - id: thanks-comment\n    send: { channel: email, template: thanks, purpose: received.survey_answered.comment }\n    goto: done\n" +
	"  - id: thanks\n    send: { channel: email, template: thanks }\n" +
	"  - id: done\n    exit: {}\n" +
	"  - id: no-answer\n    exit: { reason: no answer }\n"

// TestReceivedEventInLaterSteps: the answer that ended a wait_for is there
// for the conditions and purposes after it.
func TestReceivedEventInLaterSteps(t *testing.T) {
	t.Parallel()
	j := mustParse(t, surveyJourney)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	order := &Event{ID: "e-1", Type: "order.placed", CustomerID: "c-1", At: now, Data: map[string]any{"order_id": "o-1", "total": 10.0}}
	st, act, err := j.Start(customer("home", "family"), order, now)
	if err != nil || act.Kind != ActSend {
		t.Fatalf("start: %+v %v", act, err)
	}
	st, act, _ = j.Next(st, Occurrence{Kind: OccSent, Outcome: SendSent}, now)
	answer := &Event{ID: "e-2", Type: "survey.answered", CustomerID: "c-1", At: now.Add(time.Hour),
		Data: map[string]any{"answer": "yes", "comment": "more of this"}}
	st, act, err = j.Next(st, Occurrence{Kind: OccEvent, Event: answer}, now.Add(time.Hour))
	if err != nil || act.Kind != ActSend || act.Step != "thanks-comment" || act.Send.Purpose != "more of this" {
		t.Fatalf("after the answer: %+v %v", act, err)
	}
	if st.Received["survey.answered"].ID != "e-2" {
		t.Errorf("state does not keep the received event: %+v", st.Received)
	}
}

// TestSendOutcomeInConditions: a follow-up refers to the first message
// only when the customer got it.
func TestSendOutcomeInConditions(t *testing.T) {
	t.Parallel()
	j := mustParse(t, head+
		"  - id: remind\n    send: { channel: email, template: t }\n"+
		"  - id: check\n    branch:\n"+
		"      - when: outcome(\"remind\") == \"sent\"\n        goto: follow-up\n"+
		"      - goto: first-contact\n"+
		"  - id: follow-up\n    send: { channel: email, template: follow-up }\n    goto: done\n"+
		"  - id: first-contact\n    send: { channel: email, template: first-contact }\n"+
		"  - id: done\n    exit: {}\n")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for outcome, want := range map[SendOutcome]string{SendSent: "follow-up", SendSuppressed: "first-contact", SendStale: "first-contact", SendFailed: "first-contact"} {
		st, _, err := j.Start(customer("home", "family"), renewalScheduled("e-1", now, now.Add(40*24*time.Hour)), now)
		if err != nil {
			t.Fatal(err)
		}
		st, act, err := j.Next(st, Occurrence{Kind: OccSent, Outcome: outcome}, now)
		if err != nil || act.Step != want {
			t.Errorf("remind %s: next step %+v %v, want %s", outcome, act, err, want)
		}
		if st.Outcomes["remind"] != outcome {
			t.Errorf("state outcomes %v", st.Outcomes)
		}
	}
}

// TestChannelFallbackChain: channel: [push, email] asks for push and falls
// back to email.
func TestChannelFallbackChain(t *testing.T) {
	t.Parallel()
	j := mustParse(t, head+"  - id: tell\n    send: { channel: [push, email], template: t }\n")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	_, act, err := j.Start(customer("home", "family"), renewalScheduled("e-1", now, now), now)
	if err != nil || act.Send.Channel != "push" || !slices.Equal(act.Send.Fallback, []string{"email"}) {
		t.Fatalf("send %+v %v", act.Send, err)
	}
	if got := j.Templates()["t"]; !slices.Contains(got, "email") || !slices.Contains(got, "push") {
		t.Errorf("template channels %v: a chain needs the template on each channel", got)
	}
}

// TestNewerTriggerUpdatesTheRun: a new renewal date for the same policy
// moves the reminder; an older event changes nothing; a date so close
// that the reminder is due sends it at once.
func TestNewerTriggerUpdatesTheRun(t *testing.T) {
	t.Parallel()
	j := mustParse(t, strings.Replace(head, "steps:\n", "key: event.policy_id\nsteps:\n", 1)+
		"  - id: wait\n    wait: { until: 'event.renews_at - duration(\"336h\")' }\n"+
		"  - id: remind\n    send: { channel: email, template: t }\n")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	st, act, err := j.Start(customer("home", "family"), renewalScheduled("e-1", t0, t0.Add(60*24*time.Hour)), t0)
	if err != nil || !act.Until.Equal(t0.Add(46*24*time.Hour)) {
		t.Fatalf("start: %+v %v", act, err)
	}
	t1 := t0.Add(24 * time.Hour)
	st, act, err = j.Next(st, Occurrence{Kind: OccRetrigger, Event: renewalScheduled("e-2", t1, t0.Add(90*24*time.Hour))}, t1)
	if err != nil || act.Kind != ActSleep || !act.Until.Equal(t0.Add(76*24*time.Hour)) || st.Trigger.ID != "e-2" {
		t.Fatalf("newer trigger: %+v %v (trigger %s); want the wait moved to two weeks before the new date", act, err, st.Trigger.ID)
	}
	st2, act2, _ := j.Next(st, Occurrence{Kind: OccRetrigger, Event: renewalScheduled("e-0", t0.Add(-time.Hour), t0.Add(10*24*time.Hour))}, t1)
	if !act2.Until.Equal(act.Until) || st2.Trigger.ID != "e-2" {
		t.Fatalf("an older trigger changed the run: %+v, trigger %s", act2, st2.Trigger.ID)
	}
	_, act, err = j.Next(st, Occurrence{Kind: OccRetrigger, Event: renewalScheduled("e-3", t1, t1.Add(5*24*time.Hour))}, t1)
	if err != nil || act.Kind != ActSend || act.Step != "remind" {
		t.Fatalf("renewal moved close: %+v %v; want the reminder now", act, err)
	}
}

func TestNewConstructMistakes(t *testing.T) {
	t.Parallel()
	checkMistakes(t, parseJourney(t), []mistake{
		{"received event read after a timeout path", strings.Replace(strings.Replace(surveyJourney, "on_timeout: no-answer", "on_timeout: which", 1), "    goto: done\n", "    goto: no-answer\n", 1),
			`12:24: when: received.survey_answered may be missing, and reading it then fails the run: it is set once a wait_for has got survey.answered`},
		{"received event the journey never waits for", strings.Replace(surveyJourney, "purpose: received.survey_answered.comment", "purpose: received.order_placed.order_id", 1),
			`16:65: purpose: received.order_placed is never set: no wait_for in this journey waits for order.placed`},
		{"received misspelt", strings.Replace(surveyJourney, "purpose: received.survey_answered.comment", "purpose: received.survey_answerd.comment", 1),
			`16:65: purpose: received has no field "survey_answerd" (did you mean`},
		{"outcome of no step", head + "  - id: remind\n    send: { channel: email, template: t }\n  - id: b\n    branch:\n      - when: outcome(\"remnd\") == \"sent\"\n        goto: c\n  - id: c\n    exit: {}\n",
			`10:23: when: outcome("remnd"): no send step has that id (did you mean "remind"?)`},
		{"outcome misspelt", head + "  - id: remind\n    send: { channel: email, template: t }\n  - id: b\n    branch:\n      - when: outcome(\"remind\") == \"snt\"\n        goto: c\n  - id: c\n    exit: {}\n",
			`10:36: when: "snt" is not an outcome of a send`},
		{"outcome without a literal", head + "  - id: remind\n    send: { channel: email, template: t }\n  - id: b\n    branch:\n      - when: outcome(customer.plan) == \"sent\"\n        goto: c\n  - id: c\n    exit: {}\n",
			`10:23: when: outcome() takes the id of a send step in quotes`},
		{"now in the key", strings.Replace(head, "steps:\n", "key: string(now)\nsteps:\n", 1) + "  - id: a\n    exit: {}\n",
			`5:13: key cannot use now`},
		{"received in the audience", strings.Replace(surveyJourney, "steps:\n", "audience: has(received.survey_answered)\nsteps:\n", 1),
			`5:15: audience cannot use received`},
		{"channel list with an unknown channel", head + "  - id: a\n    send: { channel: [push, sms], template: t }\n",
			`7:29: channel "sms": a channel list holds email and push`},
		{"preferred in a list", head + "  - id: a\n    send: { channel: [preferred, email], template: t }\n",
			`7:23: channel: preferred already means the customer's channel`},
		{"channel twice", head + "  - id: a\n    send: { channel: [email, email], template: t }\n",
			`7:30: channel email is in the list twice`},
		{"channel misspelt", head + "  - id: a\n    send: { channel: emial, template: t }\n",
			`7:22: channel "emial": want email, push or preferred, or a list to try in order ([push, email]) (did you mean "email"?)`},
	})
}

// TestRetriggerStillFeedsAWaitForItsType: a wait_for for the trigger's
// own event type gets the event, as before the retrigger rule.
func TestRetriggerStillFeedsAWaitForItsType(t *testing.T) {
	t.Parallel()
	j := mustParse(t, strings.Replace(head, "steps:\n", "key: event.policy_id\nsteps:\n", 1)+
		"  - id: again\n    wait_for: { event: policy.renewal_scheduled, timeout: 7d }\n"+
		"  - id: remind\n    send: { channel: email, template: t }\n")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	st, _, err := j.Start(customer("home", "family"), renewalScheduled("e-1", t0, t0.Add(60*24*time.Hour)), t0)
	if err != nil {
		t.Fatal(err)
	}
	_, act, err := j.Next(st, Occurrence{Kind: OccRetrigger, Event: renewalScheduled("e-2", t0.Add(time.Hour), t0.Add(90*24*time.Hour))}, t0.Add(time.Hour))
	if err != nil || act.Kind != ActSend {
		t.Fatalf("%+v %v: the wait_for should have got the event", act, err)
	}
}
