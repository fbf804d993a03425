package journey

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"
)

// TestHoldoutMistakes: a holdout that is not a percentage below 100% is
// refused where it is written, saying what to write instead.
func TestHoldoutMistakes(t *testing.T) {
	t.Parallel()
	send := "  - id: hi\n    send: { channel: email, template: hi }\n"
	// head is lines 1-5, the step lines 6-7, holdout line 8.
	for _, m := range []mistake{
		{"no percent sign", "10", "8:10: holdout 10: write a percentage, such as holdout: 10%"},
		{"a fraction", "0.1", "8:10: holdout 0.1: write a percentage, such as holdout: 10%"},
		{"a word", "some", "8:10: holdout \"some\": write a percentage, such as holdout: 10%"},
		{"hundred", "100%", "8:10: holdout 100%: must be below 100% (holding out every entrant would send nothing)"},
		{"over hundred", "150%", "8:10: holdout 150%: must be below 100%"},
		{"negative", "-5%", "8:10: holdout -5%: must not be negative"},
		{"too precise", "10.125%", "8:10: holdout 10.125%: use at most two decimals"},
		{"a list", "[10%]", "8:10: holdout must be a percentage"},
		// ParseFloat reads more than percentages: NaN became a huge
		// negative share, and exponents and hex went through.
		{"not a number", "NaN%", "8:10: holdout \"NaN%\": write a percentage, such as holdout: 10%"},
		{"an exponent", "1e1%", "8:10: holdout \"1e1%\": write a percentage, such as holdout: 10%"},
		{"hex", "0x1p3%", "8:10: holdout \"0x1p3%\": write a percentage, such as holdout: 10%"},
		{"infinity", "Inf%", "8:10: holdout \"Inf%\": write a percentage, such as holdout: 10%"},
	} {
		checkMistakes(t, parseJourney(t), []mistake{{m.name, head + send + "holdout: " + m.src + "\ngoal: { event: policy.renewed }\n", m.want}})
	}
	// A holdout with nothing to compare is refused where it is written.
	checkMistakes(t, parseJourney(t), []mistake{{"no goal", head + send + "holdout: 10%\n",
		"8:10: holdout 10%: the journey has no goal, so held-out and treated customers have nothing to be compared on: add goal: { event: ... }"}})
}

func TestHoldoutParses(t *testing.T) {
	t.Parallel()
	send := "  - id: hi\n    send: { channel: email, template: hi }\n"
	for src, want := range map[string]int{"": 0, "holdout: 10%\n": 1000, "holdout: 0%\n": 0, "holdout: 12.5%\n": 1250,
		"holdout: \"20%\"\n": 2000, "holdout: 99.99%\n": 9999, "holdout: 0.01%\n": 1} {
		j := mustParse(t, head+send+src+"goal: { event: policy.renewed }\n")
		if j.Holdout != want {
			t.Errorf("%q: holdout %d basis points, want %d", src, j.Holdout, want)
		}
	}
}

// TestHeldOutIsStable: the assignment is a pure function of journey and
// customer: the same answer every time, a known answer for known ids (so
// a change of hash, which would move customers between groups of runs in
// flight, fails here), and another journey draws its own group.
func TestHeldOutIsStable(t *testing.T) {
	t.Parallel()
	for i := range 1000 {
		id := fmt.Sprintf("c-%d", i)
		if HeldOut("j", id, 1000) != HeldOut("j", id, 1000) {
			t.Fatalf("%s: two answers", id)
		}
	}
	// The documented rule (docs/holdouts.md), written out: the first 8
	// bytes of sha256(journey id, NUL, customer id) as a big-endian
	// number, modulo 10,000, below the holdout in basis points.
	for i := range 200 {
		id := fmt.Sprintf("c-%d", i)
		sum := sha256.Sum256([]byte("renewal\x00" + id))
		want := binary.BigEndian.Uint64(sum[:8])%10000 < 2000
		if got := HeldOut("renewal", id, 2000); got != want {
			t.Fatalf("%s: held out %v, the documented rule says %v", id, got, want)
		}
	}
	if HeldOut("j", "c-1", 0) {
		t.Error("a holdout of 0 holds someone out")
	}
	same := 0
	for i := range 10000 {
		id := fmt.Sprintf("c-%d", i)
		if HeldOut("a", id, 5000) == HeldOut("b", id, 5000) {
			same++
		}
	}
	// Independent draws agree half the time: 5000 ± 4 sd (sd = 50).
	if same < 4800 || same > 5200 {
		t.Errorf("journeys a and b agree on %d of 10000 customers at 50%%: not independent", same)
	}
}

// TestHeldOutShare: over 100,000 customers the held-out share is the
// configured one within 4 standard deviations (sqrt(p(1-p)/n)).
func TestHeldOutShare(t *testing.T) {
	t.Parallel()
	const n = 100000
	for _, bp := range []int{100, 1000, 2000, 5000, 9000} {
		held := 0
		for i := range n {
			if HeldOut("welcome", fmt.Sprintf("cust-%07d", i), bp) {
				held++
			}
		}
		p := float64(bp) / 10000
		sd := math.Sqrt(p * (1 - p) / n)
		if got := float64(held) / n; math.Abs(got-p) > 4*sd {
			t.Errorf("holdout %d bp: %.4f held out, want %.4f ± %.4f", bp, got, p, 4*sd)
		}
	}
}

// TestDiffShowsHoldout: a lowered holdout reaches more customers, and
// diff says so.
func TestDiffShowsHoldout(t *testing.T) {
	t.Parallel()
	send := "  - id: hi\n    send: { channel: email, template: hi }\n"
	goal := "goal: { event: policy.renewed }\n"
	old := mustParse(t, head+send+goal+"holdout: 20%\n")
	nw := mustParse(t, head+send+goal+"holdout: 5%\n")
	var got *Change
	for _, c := range Diff(old, nw) {
		if c.Field == "holdout" {
			got = &c
		}
	}
	if got == nil || got.Old != "20%" || got.New != "5%" || got.Pressure == "" {
		t.Fatalf("holdout change: %+v, want 20%% -> 5%% marked as pressure", got)
	}
	for _, c := range Diff(nw, old) {
		if c.Field == "holdout" && c.Pressure != "" {
			t.Errorf("a raised holdout is marked as pressure: %+v", c)
		}
	}
}

// TestOutcomeParses: a journey may declare the outcome its holdout is
// judged on, an event within a window after entry; a holdout then needs
// no goal.
func TestOutcomeParses(t *testing.T) {
	t.Parallel()
	send := "  - id: hi\n    send: { channel: email, template: hi }\n"
	j := mustParse(t, head+send+"holdout: 10%\noutcome: { event: policy.renewed, within: 30d }\n")
	if j.Outcome == nil || j.Outcome.Event != "policy.renewed" || j.Outcome.Within != 30*24*time.Hour {
		t.Fatalf("outcome %+v", j.Outcome)
	}
	if j.Listens("policy.renewed") {
		t.Error("an outcome event is routed to runs; it is only counted")
	}
	if j := mustParse(t, head+send); j.Outcome != nil {
		t.Errorf("no outcome declared: %+v", j.Outcome)
	}
}

// TestOutcomeMistakes: an outcome is refused where it is written when its
// event is unknown or its window is missing, not a duration, or too long.
func TestOutcomeMistakes(t *testing.T) {
	t.Parallel()
	send := "  - id: hi\n    send: { channel: email, template: hi }\n"
	// head is lines 1-5, the step lines 6-7, outcome line 8.
	for _, m := range []mistake{
		{"unknown event", "{ event: policy.bought, within: 30d }", "8:19: outcome event \"policy.bought\""},
		{"no window", "{ event: policy.renewed }", "8:10: outcome: missing field \"within\""},
		{"no event", "{ within: 30d }", "8:10: outcome: missing field \"event\""},
		{"bad window", "{ event: policy.renewed, within: soon }", "8:43: outcome within"},
		{"zero window", "{ event: policy.renewed, within: 0s }", "8:43: outcome within 0s: must be longer than zero"},
		{"long window", "{ event: policy.renewed, within: 400d }", "8:43: outcome within 400d: at most 365d"},
		{"a list", "[policy.renewed]", "8:10: outcome must be a mapping"},
	} {
		checkMistakes(t, parseJourney(t), []mistake{{m.name, head + send + "outcome: " + m.src + "\n", m.want}})
	}
}
