package policy

import (
	"strings"
	"testing"
	"time"
)

// TestChannelChainFallsBackWhenAChannelIsCapped: a message whose first
// channel is full for the day goes out on the next one the customer can
// receive, instead of waiting (and, near max_defer, being dropped).
func TestChannelChainFallsBackWhenAChannelIsCapped(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	rules := houseRules(t)
	rules.MinGap = time.Hour
	rules.MaxDefer = 6 * time.Hour
	pushToday := []Contact{{At: noon.Add(-2 * time.Hour), Channel: Push, Key: "earlier"}}
	preferPush := reachable()
	preferPush.Preferred = Push
	high := Request{Key: "k", Channel: Preferred, Topic: "service", Priority: High, FirstAsked: noon}

	d := Decide(rules, preferPush, pushToday, nil, high, noon)
	if d.Verdict != Allow || d.Channel != Email {
		t.Fatalf("preferred push, push capped, email free: %s on %q; want allow on email", d, d.Channel)
	}
	if !strings.Contains(strings.Join(d.Detail.Skipped, ";"), "push: cap") {
		t.Errorf("detail does not say why push was skipped: %+v", d.Detail)
	}

	chain := Request{Key: "k", Channel: Push, Fallback: []string{Email}, Topic: "service", Priority: Normal, FirstAsked: noon}
	if d := Decide(rules, reachable(), pushToday, nil, chain, noon); d.Verdict != Allow || d.Channel != Email {
		t.Fatalf("chain [push, email], push capped: %s on %q; want allow on email", d, d.Channel)
	}
	if d := Decide(rules, reachable(), nil, nil, chain, noon); d.Verdict != Allow || d.Channel != Push {
		t.Fatalf("chain [push, email], nothing capped: %s on %q; want push, the first", d, d.Channel)
	}

	// Holds that concern the customer, not a channel, hold every channel:
	// the message waits for them, on the first channel free then.
	night := at(t, oslo, "2026-03-10 22:00")
	morning := at(t, oslo, "2026-03-11 08:00")
	nightRules := houseRules(t)
	nightRules.MinGap = time.Hour
	atNight := Request{Key: "k", Channel: Preferred, Priority: High, FirstAsked: night}
	if d := Decide(nightRules, preferPush, nil, nil, atNight, night); d.Verdict != Defer || d.Channel != Push || d.Reason != ReasonQuietHours || !d.Until.Equal(morning) {
		t.Fatalf("quiet hours: %s on %q; want a deferral to 08:00 on push", d, d.Channel)
	}
	lateToday := []Contact{{At: at(t, oslo, "2026-03-10 20:00"), Channel: Push, Key: "earlier"}}
	if d := Decide(nightRules, preferPush, lateToday, nil, atNight, night); d.Verdict != Defer || d.Channel != Email || d.Reason != ReasonQuietHours || !d.Until.Equal(morning) {
		t.Fatalf("quiet hours, push capped past them: %s on %q; want a deferral to 08:00 on email", d, d.Channel)
	}

	// Every channel capped: wait for the one that frees first.
	emailRules := rules
	emailRules.Caps = append(emailRules.Caps, Cap{Channel: Email, Window: 24 * time.Hour, Max: 1})
	both := []Contact{{At: noon.Add(-2 * time.Hour), Channel: Push, Key: "a"}, {At: noon.Add(-20 * time.Hour), Channel: Email, Key: "b"}}
	d = Decide(emailRules, reachable(), both, nil, chain, noon)
	if d.Verdict != Defer || d.Channel != Email || !d.Until.Equal(noon.Add(4*time.Hour)) {
		t.Fatalf("both capped: %s on %q; want to wait for email, free at 16:00", d, d.Channel)
	}

	// A single channel does not fall back.
	if d := Decide(rules, reachable(), pushToday, nil, Request{Key: "k", Channel: Push, Priority: High, FirstAsked: noon}, noon); d.Channel != Push || d.Verdict == Allow {
		t.Fatalf("channel: push alone fell back: %s on %q", d, d.Channel)
	}
	// A channel the customer cannot receive is skipped, as before.
	noPush := reachable()
	noPush.Channels[Push] = ChannelState{}
	if d := Decide(rules, noPush, nil, nil, chain, noon); d.Verdict != Allow || d.Channel != Email {
		t.Fatalf("chain without push consent: %s on %q", d, d.Channel)
	}
}

// TestCriticalMessagesAndCaps: whether critical messages use up the caps
// marketing messages share is the policy's choice; by default they do.
func TestCriticalMessagesAndCaps(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	noon := at(t, oslo, "2026-03-10 12:00")
	rules := houseRules(t)
	rules.MinGap = time.Hour
	rules.Caps = []Cap{{Window: 7 * 24 * time.Hour, Max: 2}}
	window := []Contact{
		{At: noon.Add(-3 * time.Hour), Channel: Email, Key: "otp-1", Critical: true},
		{At: noon.Add(-48 * time.Hour), Channel: Email, Key: "otp-2", Critical: true},
	}
	req := Request{Key: "k", Channel: Email, Topic: "offers", Priority: Normal, FirstAsked: noon}
	if d := Decide(rules, reachable(), window, nil, req, noon); d.Verdict != Defer || d.Reason != ReasonCap {
		t.Fatalf("default: %s; critical messages count toward caps", d)
	}
	rules.CriticalOutsideCaps = true
	if d := Decide(rules, reachable(), window, nil, req, noon); d.Verdict != Allow {
		t.Fatalf("critical_counts_toward_caps: false: %s; want allow", d)
	}
	// The minimum gap still spaces messages out.
	window[0].At = noon.Add(-10 * time.Minute)
	if d := Decide(rules, reachable(), window, nil, req, noon); d.Verdict != Defer || d.Reason != ReasonMinGap {
		t.Fatalf("min gap after a critical message: %s", d)
	}
}
