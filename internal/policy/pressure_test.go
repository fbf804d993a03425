package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// pressureRules is one cap of 4 a week and nothing else, so each test
// reads the cap alone.
func pressureRules(a *Adaptive) Rules {
	return Rules{Location: time.UTC, Caps: []Cap{{Window: 7 * 24 * time.Hour, Max: 4}}, MaxDefer: 30 * 24 * time.Hour, Adaptive: a}
}

// sentDaily is n messages, one a day at noon, the newest yesterday.
func sentDaily(now time.Time, n int) []Contact {
	w := make([]Contact, n)
	for i := range w {
		w[i] = Contact{At: now.Add(-time.Duration(i+1) * 24 * time.Hour), Channel: Email, Key: fmt.Sprint("m", i)}
	}
	return w
}

func TestAdaptivePressure(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	req := Request{Key: "k", Channel: Email, Topic: "news"}
	adaptive := &Adaptive{HalveAfter: 3, Floor: 1, Grace: 36 * time.Hour}
	tests := []struct {
		name     string
		adaptive *Adaptive
		sent     int
		engaged  time.Time
		verdict  Verdict
		halvings int
		ignored  int
		cap      string
		facts    string
	}{
		// 3 in the week, cap 4: room for one more.
		{name: "off: the policy cap applies", sent: 3, verdict: Allow},
		// Of 3 sent, the one yesterday is inside the 36h grace: 2 ignored.
		{name: "two ignored: caps in full", adaptive: adaptive, sent: 3, verdict: Allow},
		// 4 sent, 3 older than the grace and none engaged: cap 4 → 2, and
		// 4 in the week fill it.
		{name: "three ignored: caps halved", adaptive: adaptive, sent: 4, verdict: Defer, halvings: 1, ignored: 3,
			cap: "2 per 7d on all channels (halved from 4)", facts: "3 ignored since Mar 04 12:00 UTC: caps halved"},
		// 7 sent over a week, 6 ignored: cap 4 → 1.
		{name: "six ignored: caps quartered", adaptive: adaptive, sent: 7, verdict: Defer, halvings: 2, ignored: 6,
			cap: "1 per 7d on all channels (quartered from 4)", facts: "6 ignored since Mar 01 12:00 UTC: caps quartered"},
		// Twelve ignored would divide by 16; halving stops where the caps
		// reach the floor, two a week, and the facts say no more than that.
		{name: "the floor holds", adaptive: &Adaptive{HalveAfter: 3, Floor: 2, Grace: 36 * time.Hour}, sent: 13, verdict: Defer, halvings: 1, ignored: 12,
			cap: "2 per 7d on all channels (halved from 4)", facts: "12 ignored since Feb 23 12:00 UTC: caps halved"},
		// A floor at the cap leaves nothing to lower: the facts must not
		// claim the caps were halved.
		{name: "a floor at the cap", adaptive: &Adaptive{HalveAfter: 3, Floor: 4, Grace: 36 * time.Hour}, sent: 7, verdict: Defer,
			cap: "4 per 7d on all channels"},
		// A click two days ago: only yesterday's message is after it, and
		// it is inside the grace.
		{name: "engagement restores the caps", adaptive: adaptive, sent: 7, engaged: now.Add(-50 * time.Hour), verdict: Defer},
		{name: "engagement restores the caps with room", adaptive: adaptive, sent: 3, engaged: now.Add(-50 * time.Hour), verdict: Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rel := reachable()
			rel.LastEngaged = tt.engaged
			d := Decide(pressureRules(tt.adaptive), rel, sentDaily(now, tt.sent), nil, req, now)
			if d.Verdict != tt.verdict {
				t.Fatalf("verdict = %s (%s, %s), want %s", d.Verdict, d.Reason, d.Detail, tt.verdict)
			}
			if d.Detail.CapHalvings != tt.halvings || d.Detail.Ignored != tt.ignored {
				t.Errorf("halvings, ignored = %d, %d; want %d, %d", d.Detail.CapHalvings, d.Detail.Ignored, tt.halvings, tt.ignored)
			}
			if tt.cap != "" && d.Detail.Cap != tt.cap {
				t.Errorf("cap = %q, want %q", d.Detail.Cap, tt.cap)
			}
			if tt.facts != "" && !strings.Contains(d.Detail.String(), tt.facts) {
				t.Errorf("facts %q do not say %q", d.Detail.String(), tt.facts)
			}
		})
	}
}

// A lowered cap defers until the contact that fills the lowered cap
// leaves the window, not the one that would fill the policy's.
func TestAdaptivePressureDefersToLoweredCap(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	d := Decide(pressureRules(&Adaptive{HalveAfter: 3}), reachable(), sentDaily(now, 4), nil, Request{Key: "k", Channel: Email}, now)
	// Cap 2 a week: the second newest (2 days ago) leaves in 5 days.
	if want := now.Add(5 * 24 * time.Hour); d.Verdict != Defer || !d.Until.Equal(want) {
		t.Fatalf("got %s, want defer until %s", d, want)
	}
}

// Critical messages go out whatever the pressure, and do not count as
// ignored: a security alert says nothing about interest in marketing.
func TestAdaptivePressureCritical(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	window := sentDaily(now, 4)
	for i := range window[1:] {
		window[i+1].Critical = true
	}
	r := pressureRules(&Adaptive{HalveAfter: 3})
	r.CriticalOutsideCaps = true
	if d := Decide(r, reachable(), window, nil, Request{Key: "k", Channel: Email}, now); d.Verdict != Allow || d.Detail.CapHalvings != 0 {
		t.Errorf("critical contacts counted as ignored: %s %s", d, d.Detail)
	}
	if d := Decide(r, reachable(), sentDaily(now, 7), nil, Request{Key: "k", Channel: Email, Priority: Critical}, now); d.Verdict != Allow {
		t.Errorf("critical message held by pressure: %s", d)
	}
}

func TestEffectiveMaxFloor(t *testing.T) {
	t.Parallel()
	r := Rules{Adaptive: &Adaptive{HalveAfter: 3, Floor: 2}}
	for _, tc := range []struct{ max, shift, want int }{
		{10, 1, 5}, {10, 2, 2}, {10, 3, 2}, {1, 1, 1}, {3, 0, 3}, {2, 5, 2},
	} {
		if got := r.effectiveMax(Cap{Max: tc.max}, tc.shift); got != tc.want {
			t.Errorf("effectiveMax(%d, %d) = %d, want %d", tc.max, tc.shift, got, tc.want)
		}
	}
}
