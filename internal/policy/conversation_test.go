package policy

import (
	"strings"
	"testing"
	"time"
)

func TestConversationPausesMarketing(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	conv := &Conversations{PauseAfterAnswer: 48 * time.Hour, AllowTopics: []string{"service"}, Recheck: 2 * time.Hour}
	cases := []struct {
		name     string
		conv     *Conversation
		topic    string
		priority Priority
		want     Verdict
		reason   Reason
		until    time.Time
		facts    string
	}{
		{name: "unanswered reply holds marketing and rechecks", conv: &Conversation{OpenedAt: noon.Add(-time.Hour)},
			topic: "offers", want: Defer, reason: ReasonConversationOpen, until: noon.Add(2 * time.Hour), facts: "has no answer yet"},
		{name: "answered within the pause holds until it ends",
			conv:  &Conversation{OpenedAt: noon.Add(-30 * time.Hour), AnsweredAt: noon.Add(-24 * time.Hour)},
			topic: "offers", want: Defer, reason: ReasonConversationOpen, until: noon.Add(24 * time.Hour), facts: "marketing pauses 2d after the answer"},
		{name: "answered longer ago than the pause allows",
			conv:  &Conversation{OpenedAt: noon.Add(-80 * time.Hour), AnsweredAt: noon.Add(-72 * time.Hour)},
			topic: "offers", want: Allow, reason: ReasonOK},
		{name: "service topic goes out", conv: &Conversation{OpenedAt: noon.Add(-time.Hour)}, topic: "service", want: Allow, reason: ReasonOK},
		{name: "critical goes out", conv: &Conversation{OpenedAt: noon.Add(-time.Hour)}, topic: "offers", priority: Critical,
			want: Allow, reason: ReasonCritical},
		{name: "no conversation", topic: "offers", want: Allow, reason: ReasonOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := houseRules(t)
			r.Conversations = conv
			rel := reachable()
			rel.Location = oslo
			rel.Conversation = c.conv
			d := Decide(r, rel, nil, nil, Request{Key: "k", Channel: Email, Topic: c.topic, Priority: c.priority, FirstAsked: noon}, noon)
			if d.Verdict != c.want || d.Reason != c.reason {
				t.Fatalf("got %s, want %s (%s)", d, c.want, c.reason)
			}
			if !c.until.IsZero() && !d.Until.Equal(c.until) {
				t.Errorf("until %s, want %s", d.Until, c.until)
			}
			if got := d.Detail.String(); !strings.Contains(got, c.facts) {
				t.Errorf("facts %q do not say %q", got, c.facts)
			}
		})
	}
}

func TestConversationHoldNeverOutlivesMaxDefer(t *testing.T) {
	t.Parallel()
	noon := at(t, time.UTC, "2026-03-10 12:00")
	r := houseRules(t)
	r.Conversations = &Conversations{PauseAfterAnswer: 30 * 24 * time.Hour}
	rel := reachable()
	rel.Conversation = &Conversation{OpenedAt: noon.Add(-time.Hour), AnsweredAt: noon.Add(-time.Minute)}
	d := Decide(r, rel, nil, nil, Request{Key: "k", Channel: Email, Topic: "offers", FirstAsked: noon}, noon)
	if d.Verdict != Suppress || d.Reason != ReasonStale {
		t.Fatalf("got %s, want a message that could only go out after max_defer dropped as stale", d)
	}
}

func TestConversationTarget(t *testing.T) {
	t.Parallel()
	c := &Conversations{ResponseTime: map[string]time.Duration{"": time.Hour, "claims": 10 * time.Minute}}
	if c.Target("claims") != 10*time.Minute || c.Target("offers") != time.Hour {
		t.Fatalf("targets: claims %s, offers %s", c.Target("claims"), c.Target("offers"))
	}
	var none *Conversations
	if none.Target("x") != 0 {
		t.Fatal("no conversations section: no target")
	}
}

// TestAMessagePausedByAConversationDoesNotHoldUpAllowedTopics: while a
// customer's reply is unanswered, a high-priority offer waits
// (conversation_open, asked again every recheck); a service message, which
// allow_topics lets through, must still go out. It was deferred behind
// the paused offer ("priority") at every ask, for as long as the
// conversation stayed open.
func TestAMessagePausedByAConversationDoesNotHoldUpAllowedTopics(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	r := houseRules(t)
	r.Conversations = &Conversations{PauseAfterAnswer: 48 * time.Hour, AllowTopics: []string{"service"}, Recheck: 2 * time.Hour}
	rel := reachable()
	rel.Location = oslo
	rel.Conversation = &Conversation{OpenedAt: noon.Add(-3 * time.Hour)}
	paused := []Waiting{{Key: "offer", Priority: High, Since: noon.Add(-3 * time.Hour), Due: noon.Add(time.Minute), Reason: ReasonConversationOpen}}
	d := Decide(r, rel, nil, paused, Request{Key: "k", Channel: Email, Topic: "service", Priority: Normal, FirstAsked: noon}, noon)
	if d.Verdict != Allow {
		t.Fatalf("got %s; want the service message allowed while the offer is paused by the conversation", d)
	}
	// A message waiting for another reason (a cap, the gap) still goes
	// first when it ranks higher.
	paused[0].Reason = ReasonMinGap
	if d := Decide(r, rel, nil, paused, Request{Key: "k", Channel: Email, Topic: "service", Priority: Normal, FirstAsked: noon}, noon); d.Verdict != Defer || d.Reason != ReasonPriority {
		t.Fatalf("got %s; want deferred behind the higher-priority message waiting for the gap", d)
	}
}
