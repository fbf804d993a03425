package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// houseRules mirrors journeys/policy.yaml.
func houseRules(t testing.TB) Rules {
	return Rules{
		Location: mustLoc(t, "Europe/Oslo"),
		Quiet:    &QuietHours{Start: 21 * 60, End: 8 * 60},
		MinGap:   24 * time.Hour,
		Caps: []Cap{
			{Window: 7 * 24 * time.Hour, Max: 3},
			{Channel: Push, Window: 24 * time.Hour, Max: 1},
		},
		MaxDefer: 7 * 24 * time.Hour,
	}
}

func reachable() Relationship {
	return Relationship{Channels: map[string]ChannelState{
		Email: {Consent: true, Address: true},
		Push:  {Consent: true, Address: true},
	}}
}

func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecide(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	tokyo := mustLoc(t, "Asia/Tokyo")
	noon := at(t, oslo, "2026-03-10 12:00")
	day := 24 * time.Hour

	type tc struct {
		name    string
		rules   func(*Rules)
		rel     func(*Relationship)
		window  []Contact
		waiting []Waiting
		req     Request
		now     time.Time
		verdict Verdict
		reason  Reason
		until   time.Time
		channel string
	}
	email := Request{Key: "k", Channel: Email, Topic: "service"}
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	tests := []tc{
		{name: "allowed on a quiet day", req: email, now: noon, verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "no consent suppresses", req: email, now: noon,
			rel:     func(r *Relationship) { r.Channels[Email] = ChannelState{Address: true} },
			verdict: Suppress, reason: ReasonNoConsent},
		{name: "critical never bypasses consent", req: with(email, func(r *Request) { r.Priority = Critical }), now: noon,
			rel:     func(r *Relationship) { r.Channels[Email] = ChannelState{Address: true} },
			verdict: Suppress, reason: ReasonNoConsent},
		{name: "hard bounce suppresses", req: email, now: noon,
			rel: func(r *Relationship) {
				r.Channels[Email] = ChannelState{Consent: true, Address: true, Suppressed: ReasonHardBounce}
			},
			verdict: Suppress, reason: ReasonHardBounce},
		{name: "complaint suppresses even critical", req: with(email, func(r *Request) { r.Priority = Critical }), now: noon,
			rel: func(r *Relationship) {
				r.Channels[Email] = ChannelState{Consent: true, Address: true, Suppressed: ReasonComplaint}
			},
			verdict: Suppress, reason: ReasonComplaint},
		{name: "no push subscription", req: with(email, func(r *Request) { r.Channel = Push }), now: noon,
			rel:     func(r *Relationship) { r.Channels[Push] = ChannelState{Consent: true} },
			verdict: Suppress, reason: ReasonNoAddress},
		{name: "topic opt-out suppresses", req: email, now: noon,
			rel:     func(r *Relationship) { r.TopicsOptedOut = []string{"marketing", "service"} },
			verdict: Suppress, reason: ReasonTopicOptedOut},
		{name: "preferred push used when usable", req: with(email, func(r *Request) { r.Channel = Preferred }), now: noon,
			rel:     func(r *Relationship) { r.Preferred = Push },
			verdict: Allow, reason: ReasonOK, channel: Push},
		{name: "preferred falls back to email without push consent", req: with(email, func(r *Request) { r.Channel = Preferred }), now: noon,
			rel: func(r *Relationship) {
				r.Preferred = Push
				r.Channels[Push] = ChannelState{Address: true}
			},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "preferred with nothing usable", req: with(email, func(r *Request) { r.Channel = Preferred }), now: noon,
			rel:     func(r *Relationship) { r.Channels = map[string]ChannelState{} },
			verdict: Suppress, reason: ReasonNoConsent},
		{name: "same purpose from another journey is deduped", now: noon,
			req:     with(email, func(r *Request) { r.Purpose = "renewal:p-9" }),
			window:  []Contact{{At: noon.Add(-10 * day), Channel: Push, Purpose: "renewal:p-9", Key: "other"}},
			verdict: Suppress, reason: ReasonDuplicatePurpose},
		{name: "same purpose outside its window goes again", now: noon,
			req:     with(email, func(r *Request) { r.Purpose = "renewal:p-9" }),
			window:  []Contact{{At: noon.Add(-31 * day), Channel: Push, Purpose: "renewal:p-9", Key: "other"}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "quiet hours defer to 08:00 local", req: email, now: at(t, oslo, "2026-03-10 22:30"),
			verdict: Defer, reason: ReasonQuietHours, until: at(t, oslo, "2026-03-11 08:00")},
		{name: "quiet hours after midnight", req: email, now: at(t, oslo, "2026-03-11 03:00"),
			verdict: Defer, reason: ReasonQuietHours, until: at(t, oslo, "2026-03-11 08:00")},
		{name: "quiet hours start exactly at 21:00", req: email, now: at(t, oslo, "2026-03-10 21:00"),
			verdict: Defer, reason: ReasonQuietHours, until: at(t, oslo, "2026-03-11 08:00")},
		{name: "08:00 is no longer quiet", req: email, now: at(t, oslo, "2026-03-11 08:00"),
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "quiet hours use the customer's time zone", req: email, now: noon, // 20:00 in Tokyo
			rel:     func(r *Relationship) { r.Location = tokyo },
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "quiet in Tokyo while noon in Oslo", req: email, now: at(t, oslo, "2026-03-10 14:30"), // 22:30 in Tokyo
			rel:     func(r *Relationship) { r.Location = tokyo },
			verdict: Defer, reason: ReasonQuietHours, until: at(t, tokyo, "2026-03-11 08:00")},
		{name: "quiet hours across spring-forward night", req: email, now: at(t, oslo, "2026-03-28 23:00"),
			verdict: Defer, reason: ReasonQuietHours, until: time.Date(2026, 3, 29, 6, 0, 0, 0, time.UTC)}, // 08:00 CEST
		{name: "quiet hours across fall-back night", req: email, now: at(t, oslo, "2026-10-24 23:00"),
			verdict: Defer, reason: ReasonQuietHours, until: time.Date(2026, 10, 25, 7, 0, 0, 0, time.UTC)}, // 08:00 CET
		{name: "quiet window ending inside the spring-forward gap", req: email,
			rules:   func(r *Rules) { r.Quiet = &QuietHours{Start: 23 * 60, End: 2*60 + 30} },
			now:     at(t, oslo, "2026-03-29 01:30"),
			verdict: Defer, reason: ReasonQuietHours, until: time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)}, // 03:30 CEST
		{name: "daytime quiet window (not spanning midnight)", req: email,
			rules:   func(r *Rules) { r.Quiet = &QuietHours{Start: 11 * 60, End: 13 * 60} },
			now:     noon,
			verdict: Defer, reason: ReasonQuietHours, until: at(t, oslo, "2026-03-10 13:00")},
		{name: "critical bypasses quiet hours", req: with(email, func(r *Request) { r.Priority = Critical }),
			now: at(t, oslo, "2026-03-10 23:00"), verdict: Allow, reason: ReasonCritical, channel: Email},
		{name: "min gap defers to last contact + gap", req: email, now: noon,
			window:  []Contact{{At: noon.Add(-3 * time.Hour), Channel: Email, Key: "a"}},
			verdict: Defer, reason: ReasonMinGap, until: noon.Add(21 * time.Hour)},
		{name: "min gap is ignored for the request's own reservation", req: email, now: noon,
			window:  []Contact{{At: noon.Add(-time.Minute), Channel: Email, Key: "k"}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "min gap ending in quiet hours waits for morning", req: email, now: noon,
			window:  []Contact{{At: noon.Add(-14 * time.Hour), Channel: Email, Key: "a"}}, // gap ends 22:00
			verdict: Defer, reason: ReasonQuietHours, until: at(t, oslo, "2026-03-11 08:00")},
		{name: "overall cap 3 per 7d", req: email, now: noon,
			window: []Contact{
				{At: noon.Add(-6 * day), Channel: Email, Key: "a"},
				{At: noon.Add(-4 * day), Channel: Push, Key: "b"},
				{At: noon.Add(-2 * day), Channel: Email, Key: "c"},
			},
			verdict: Defer, reason: ReasonCap, until: noon.Add(day)},
		{name: "cap frees as the oldest contact leaves the window", req: email, now: noon,
			window: []Contact{
				{At: noon.Add(-7 * day), Channel: Email, Key: "a"},
				{At: noon.Add(-4 * day), Channel: Push, Key: "b"},
				{At: noon.Add(-2 * day), Channel: Email, Key: "c"},
			},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "push cap 1 per day does not hold email", req: email, now: noon,
			rules:   func(r *Rules) { r.MinGap = 0 },
			window:  []Contact{{At: noon.Add(-time.Hour), Channel: Push, Key: "a"}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "push cap 1 per day holds push", req: with(email, func(r *Request) { r.Channel = Push }), now: noon,
			rules:   func(r *Rules) { r.MinGap = 0 },
			window:  []Contact{{At: noon.Add(-time.Hour), Channel: Push, Key: "a"}},
			verdict: Defer, reason: ReasonCap, until: noon.Add(23 * time.Hour)},
		{name: "critical bypasses caps", req: with(email, func(r *Request) { r.Priority = Critical }), now: noon,
			window: []Contact{
				{At: noon.Add(-6 * day), Key: "a"}, {At: noon.Add(-4 * day), Key: "b"}, {At: noon.Add(-1 * time.Hour), Key: "c"},
			},
			verdict: Allow, reason: ReasonCritical, channel: Email},
		{name: "stale after max_defer", now: noon,
			req:     with(email, func(r *Request) { r.FirstAsked = noon.Add(-7 * day) }),
			verdict: Suppress, reason: ReasonStale},
		{name: "dropped as stale when the earliest slot is past max_defer", now: noon,
			req: with(email, func(r *Request) { r.FirstAsked = noon.Add(-6*day - 20*time.Hour) }),
			window: []Contact{
				{At: noon.Add(-5 * day), Key: "a"}, {At: noon.Add(-3 * day), Key: "b"}, {At: noon.Add(-2 * day), Key: "c"},
			},
			verdict: Suppress, reason: ReasonStale},
		{name: "lower priority steps aside for a higher one that is due", now: noon,
			req:     with(email, func(r *Request) { r.Priority = Normal }),
			waiting: []Waiting{{Key: "high", Priority: High, Since: noon.Add(-time.Hour), Due: noon}},
			verdict: Defer, reason: ReasonPriority, until: noon.Add(time.Minute)},
		{name: "higher priority is not held by a lower one", now: noon,
			req:     with(email, func(r *Request) { r.Priority = High }),
			waiting: []Waiting{{Key: "low", Priority: Low, Since: noon.Add(-time.Hour), Due: noon}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "equal priority: the older request goes first", now: noon,
			req:     with(email, func(r *Request) { r.FirstAsked = noon }),
			waiting: []Waiting{{Key: "older", Priority: Normal, Since: noon.Add(-time.Hour), Due: noon.Add(2 * time.Hour)}},
			verdict: Defer, reason: ReasonPriority, until: noon.Add(2*time.Hour + time.Minute)},
		{name: "a higher one due after the gap does not block", now: noon,
			req:     with(email, func(r *Request) { r.Priority = Low }),
			waiting: []Waiting{{Key: "high", Priority: High, Since: noon, Due: noon.Add(3 * day)}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "an abandoned waiting entry does not block", now: noon,
			req:     with(email, func(r *Request) { r.Priority = Low }),
			waiting: []Waiting{{Key: "high", Priority: High, Since: noon.Add(-2 * day), Due: noon.Add(-time.Hour)}},
			verdict: Allow, reason: ReasonOK, channel: Email},
		{name: "aging lifts a long-waiting low message past a fresh high one", now: noon,
			req:     with(email, func(r *Request) { r.Priority = Low; r.FirstAsked = noon.Add(-3 * day) }),
			waiting: []Waiting{{Key: "high", Priority: High, Since: noon, Due: noon}},
			verdict: Allow, reason: ReasonOK, channel: Email},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := houseRules(t)
			if tt.rules != nil {
				tt.rules(&r)
			}
			rel := reachable()
			if tt.rel != nil {
				tt.rel(&rel)
			}
			got := Decide(r, rel, tt.window, tt.waiting, tt.req, tt.now)
			if got.Verdict != tt.verdict || got.Reason != tt.reason {
				t.Fatalf("Decide = %s, want %s (%s); detail %+v", got, tt.verdict, tt.reason, got.Detail)
			}
			if !tt.until.IsZero() && !got.Until.Equal(tt.until) {
				t.Errorf("until = %s, want %s", got.Until.In(time.UTC), tt.until.In(time.UTC))
			}
			if tt.channel != "" && got.Channel != tt.channel {
				t.Errorf("channel = %q, want %q", got.Channel, tt.channel)
			}
		})
	}
}

func TestDecideExplainsCap(t *testing.T) {
	t.Parallel()
	r := houseRules(t)
	r.MinGap = 0
	now := at(t, r.Location, "2026-05-05 12:00")
	window := []Contact{{At: now.Add(-3 * time.Hour), Key: "a"}, {At: now.Add(-2 * time.Hour), Key: "b"}, {At: now.Add(-time.Hour), Key: "c"}}
	d := Decide(r, reachable(), window, nil, Request{Key: "k", Channel: Email}, now)
	if d.Detail.Cap != "3 per 7d on all channels" || d.Detail.Count != 3 || !strings.Contains(d.Detail.String(), "cap 3 per 7d on all channels already has 3") {
		t.Fatalf("detail = %+v, want the 3 per 7d cap with count 3", d.Detail)
	}
}

// TestDecideNeverExceedsRules drives Decide with random request streams the
// way the workflow does (deferred requests ask again at Until) and checks the
// resulting send log against every rule.
func TestDecideNeverExceedsRules(t *testing.T) {
	t.Parallel()
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			checkRandomStream(t, rand.New(rand.NewPCG(seed, seed*7+1)))
		})
	}
}

func FuzzDecideStream(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkRandomStream(t, rand.New(rand.NewPCG(a, b)))
	})
}

func checkRandomStream(t *testing.T, rng *rand.Rand) {
	r := houseRules(t)
	r.MinGap = time.Duration(rng.IntN(30)) * time.Hour
	r.Caps = []Cap{{Window: time.Duration(1+rng.IntN(10)) * 24 * time.Hour, Max: 1 + rng.IntN(4)}, {Channel: Push, Window: 24 * time.Hour, Max: 1 + rng.IntN(2)}}
	locs := []string{"Europe/Oslo", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"}
	rel := reachable()
	rel.Location = mustLoc(t, locs[rng.IntN(len(locs))])
	start := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(60*24)) * time.Hour)

	type pending struct {
		req Request
		due time.Time
	}
	var queue []pending
	for i := range 60 {
		ch := Email
		if rng.IntN(3) == 0 {
			ch = Push
		}
		prio := Priority(1 + rng.IntN(3))
		first := start.Add(time.Duration(rng.IntN(40*24*60)) * time.Minute)
		queue = append(queue, pending{req: Request{Key: fmt.Sprint(i), Channel: ch, Priority: prio, FirstAsked: first}, due: first})
	}
	var sent []Contact
	var waiting []Waiting
	for len(queue) > 0 {
		// Always serve the earliest due request, like timers firing in order.
		idx := 0
		for i, p := range queue {
			if p.due.Before(queue[idx].due) {
				idx = i
			}
		}
		p := queue[idx]
		queue = append(queue[:idx], queue[idx+1:]...)
		d := Decide(r, rel, sent, waiting, p.req, p.due)
		waiting = removeWaiting(waiting, p.req.Key)
		switch d.Verdict {
		case Allow:
			sent = append(sent, Contact{At: p.due, Channel: d.Channel, Key: p.req.Key})
		case Defer:
			if !d.Until.After(p.due) {
				t.Fatalf("defer until %s is not after now %s", d.Until, p.due)
			}
			waiting = append(waiting, Waiting{Key: p.req.Key, Priority: p.req.Priority, Since: p.req.FirstAsked, Due: d.Until})
			queue = append(queue, pending{req: p.req, due: d.Until})
		case Suppress:
			if d.Reason != ReasonStale {
				t.Fatalf("unexpected suppression %s", d)
			}
		}
		if p.due.Sub(p.req.FirstAsked) >= r.MaxDefer && d.Verdict == Allow {
			t.Fatalf("request %s sent %s after first asking, beyond max_defer", p.req.Key, p.due.Sub(p.req.FirstAsked))
		}
	}
	for i, c := range sent {
		local := c.At.In(rel.Location)
		if _, quiet := r.Quiet.EndIfInside(local); quiet {
			t.Fatalf("sent at %s local, inside quiet hours", local)
		}
		for _, cp := range r.Caps {
			n := 0
			for _, o := range sent {
				if (cp.Channel == "" || o.Channel == cp.Channel) && o.At.After(c.At.Add(-cp.Window)) && !o.At.After(c.At) {
					n++
				}
			}
			if n > cp.Max {
				t.Fatalf("cap %s exceeded: %d in the window ending %s", cp, n, c.At)
			}
		}
		for j, o := range sent {
			if i != j && !o.At.Before(c.At) && o.At.Sub(c.At) < r.MinGap {
				t.Fatalf("min gap %s violated: %s and %s", r.MinGap, c.At, o.At)
			}
		}
	}
}

func removeWaiting(ws []Waiting, key string) []Waiting {
	out := ws[:0]
	for _, w := range ws {
		if w.Key != key {
			out = append(out, w)
		}
	}
	return out
}

func TestParseDurationAndClock(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "24h": 24 * time.Hour, "7d": 168 * time.Hour, "2w": 336 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// An overflowing count of weeks wrapped to a few days (or a negative
	// min_gap).
	for _, bad := range []string{"", "d", "-1d", "7x", "1.5d", "-3h", "99999d", "2635249153387078803w", "2635249153387078802w", "523w"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
	for in, want := range map[time.Duration]string{7 * 24 * time.Hour: "7d", 30 * time.Minute: "30m", 3 * time.Hour: "3h", 90 * time.Second: "1m30s"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"24:00", "9:00", "09:60", "ab:cd", ""} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q) succeeded", bad)
		}
	}
	if c, err := ParseClock("21:05"); err != nil || c.String() != "21:05" {
		t.Errorf("ParseClock(21:05) = %v, %v", c, err)
	}
}

func TestClockNextAtOrAfterAcrossDST(t *testing.T) {
	t.Parallel()
	oslo := mustLoc(t, "Europe/Oslo")
	nine := Clock(9 * 60)
	// Saturday 10:00 before spring forward: next 09:00 is Sunday 09:00 CEST.
	got := nine.NextAtOrAfter(at(t, oslo, "2026-03-28 10:00"))
	if want := time.Date(2026, 3, 29, 7, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("got %s, want %s", got.UTC(), want)
	}
	got = nine.NextAtOrAfter(at(t, oslo, "2026-10-24 10:00"))
	if want := time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("got %s, want %s", got.UTC(), want)
	}
}

func TestEveryReasonIsExplained(t *testing.T) {
	t.Parallel()
	for _, r := range []Reason{ReasonOK, ReasonCritical, ReasonNoConsent, ReasonNoAddress, ReasonHardBounce, ReasonComplaint, ReasonUnsubscribed,
		ReasonTopicOptedOut, ReasonDuplicatePurpose, ReasonStale, ReasonQuietHours, ReasonMinGap, ReasonCap, ReasonPriority} {
		if got := Explain(r); got == string(r) {
			t.Errorf("reason %s has no words", r)
		}
	}
}

// TestAnAllowedMessageMustGoBeforeQuietHours: a message allowed just
// before the customer's quiet hours may wait on its send queue, or be
// retried after a "try later", for the reservation's 15 minutes. It must
// not go out at night: the decision says by when it must have gone
// (SendBy), the start of the customer's next quiet hours, in their zone.
func TestAnAllowedMessageMustGoBeforeQuietHours(t *testing.T) {
	t.Parallel()
	oslo, tokyo := mustLoc(t, "Europe/Oslo"), mustLoc(t, "Asia/Tokyo")
	req := Request{Key: "k", Channel: Email, Topic: "service"}
	for _, tc := range []struct {
		name string
		loc  *time.Location
		now  time.Time
		want time.Time
	}{
		{"five minutes before", oslo, at(t, oslo, "2026-03-10 20:55"), at(t, oslo, "2026-03-10 21:00")},
		{"in the morning", oslo, at(t, oslo, "2026-03-11 08:00"), at(t, oslo, "2026-03-11 21:00")},
		{"in the customer's zone", tokyo, at(t, tokyo, "2026-03-10 20:50"), at(t, tokyo, "2026-03-10 21:00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := reachable()
			rel.Location = tc.loc
			d := Decide(houseRules(t), rel, nil, nil, req, tc.now)
			if d.Verdict != Allow || !d.SendBy.Equal(tc.want) {
				t.Fatalf("%s %s, send by %s; want allow, send by %s", d.Verdict, d.Reason, d.SendBy, tc.want)
			}
		})
	}
	r := houseRules(t)
	r.Quiet = nil
	if d := Decide(r, reachable(), nil, nil, req, at(t, oslo, "2026-03-10 20:55")); d.Verdict != Allow || !d.SendBy.IsZero() {
		t.Fatalf("without quiet hours: %s, send by %s; want no bound", d.Verdict, d.SendBy)
	}
}

// TestQuietHoursEndingInTheRepeatedHour: on the night clocks fall back,
// the hour before the change comes twice. Quiet hours that end at 01:30
// must hold at 01:10 the second time too; the end used to be read as the
// first 01:30, already past, and the message went out inside quiet hours.
func TestQuietHoursEndingInTheRepeatedHour(t *testing.T) {
	t.Parallel()
	ny := mustLoc(t, "America/New_York")
	r := houseRules(t)
	r.Quiet = &QuietHours{Start: 21 * 60, End: 90}
	rel := reachable()
	rel.Location = ny
	req := Request{Key: "k", Channel: Email, Topic: "service"}
	now := time.Date(2026, 11, 1, 6, 10, 0, 0, time.UTC) // 01:10 EST, the second 01:10 of the night
	d := Decide(r, rel, nil, nil, req, now)
	if want := time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC); d.Verdict != Defer || d.Reason != ReasonQuietHours || !d.Until.Equal(want) {
		t.Fatalf("%s %s until %s; want deferred for quiet hours until %s (01:30 EST)", d.Verdict, d.Reason, d.Until, want)
	}
}
