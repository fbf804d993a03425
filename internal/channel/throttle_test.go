package channel

import (
	"context"
	"net/textproto"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/mailcatch"
)

func TestThrottlingReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		msg  string
		want bool
	}{
		{421, "4.3.2 Service not available, closing transmission channel", true},
		{421, "Too many connections", true},
		{451, "4.7.1 Rate limit exceeded, slow down", true},
		{421, "4.7.28 Our system has detected an unusual rate of unsolicited mail", true},
		{451, "4.7.500 Server busy. Please try again later", true},
		{452, "4.3.1 Insufficient system storage", true},
		{451, "4.4.5 System congestion", true},
		{451, "Throttling: too many messages", true},
		{450, "4.2.1 Mailbox temporarily unavailable", false},
		{452, "4.2.2 Mailbox full", false},
		{451, "Requested action aborted: local error in processing", false},
		{550, "5.7.1 Rate limit exceeded", false},
		{250, "2.0.0 OK", false},
	} {
		if got := throttling(&textproto.Error{Code: tc.code, Msg: tc.msg}); got != tc.want {
			t.Errorf("%d %s: throttling %v, want %v", tc.code, tc.msg, got, tc.want)
		}
	}
}

// TestPace: a throttling answer halves the rate the process was sending
// at, another one (a second later) halves it again, answers in the same
// second count once, the rate comes back over recoverIn, and a send that
// would wait longer than maxWait is refused rather than held.
func TestPace(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p := newPace(func() time.Time { return now })
	// 40 sends over 2 s: 20 a second, unpaced.
	for range 40 {
		if d, err := p.reserve(); d != 0 || err != nil {
			t.Fatalf("unpaced send waited %s (%v)", d, err)
		}
		now = now.Add(50 * time.Millisecond)
	}
	p.throttled()
	p.throttled() // the same second: counts once
	if got := p.Limit(); got < 9.5 || got > 10.5 {
		t.Fatalf("after one throttling answer: %.2f a second, want half of 20", got)
	}
	// Paced sends are spaced by 1/limit.
	d1, _ := p.reserve()
	d2, _ := p.reserve()
	if d1 < 90*time.Millisecond || d2-d1 < 90*time.Millisecond {
		t.Fatalf("paced waits %s, %s; want about 100 ms apart", d1, d2)
	}
	now = now.Add(time.Second)
	p.throttled()
	if got := p.Limit(); got > 6 {
		t.Fatalf("after a second answer: %.2f a second, want about a quarter of 20", got)
	}
	// Many throttling answers bottom out at minRate, and a send whose
	// turn is further than maxWait away is refused, not held.
	for range 20 {
		now = now.Add(time.Second)
		p.throttled()
	}
	if got := p.Limit(); got < minRate || got > minRate+1 {
		t.Fatalf("floor: %.2f a second", got)
	}
	var refused bool
	for range 5 {
		if _, err := p.reserve(); IsThrottled(err) {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("sends queued more than maxWait ahead were held instead of refused")
	}
	// Without throttling answers the rate comes back, and then pacing
	// ends.
	now = now.Add(recoverIn + time.Second)
	if got := p.Limit(); got != 0 {
		t.Fatalf("after %s without throttling: paced at %.2f, want unpaced", recoverIn, got)
	}
}

// TestRelayRateLimitSlowsSending: a relay that takes 10 messages a second
// and answers "451 4.7.1" beyond that. The throttled send is a
// ThrottledError (retried later, not at once), and the sends after it are
// paced instead of hammering the relay: of 40 messages sent back to back,
// only a few meet the limit.
func TestRelayRateLimitSlowsSending(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{Rate: 10})
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr})
	sent, throttled := 0, 0
	start := time.Now()
	for range 40 {
		_, err := e.Send(context.Background(), envelope())
		switch {
		case err == nil:
			sent++
		case IsThrottled(err):
			throttled++
		default:
			t.Fatalf("send: %v", err)
		}
	}
	if throttled == 0 || c.Throttled() != throttled {
		t.Fatalf("%d throttled (relay says %d): the relay's limit was never met", throttled, c.Throttled())
	}
	// Unpaced, every other send would meet the limit.
	if throttled > 6 || sent < 34 {
		t.Fatalf("%d sent, %d throttled in %s: sending did not slow down", sent, throttled, time.Since(start).Round(time.Millisecond))
	}
	if c.Count() != sent {
		t.Fatalf("relay has %d, %d reported sent", c.Count(), sent)
	}
}

// TestRelayClosingIsThrottled: a relay that will not even greet (421)
// asks lojal to come back later; that is not an outage to retry at once.
func TestRelayClosingIsThrottled(t *testing.T) {
	t.Parallel()
	c := catcher(t, mailcatch.Options{})
	c.SetMode(mailcatch.TempFail)
	e := newEmail(t, EmailConfig{URL: "smtp://" + c.Addr, Timeout: 2 * time.Second})
	if _, err := e.Send(context.Background(), envelope()); !IsThrottled(err) {
		t.Fatalf("421 greeting: %v, want throttled", err)
	}
}
