package channel

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ThrottledError is a relay asking lojal to slow down (a 421, or a 4xx
// that names a busy system or a rate limit), or this process holding a
// message back because one did. Nothing was handed over; the message is
// sent later, and later still each time it meets this again.
type ThrottledError struct {
	Err error
	// RetryAfter, when set, is when this process will have a turn for the
	// message again (it held the message back itself); zero when the
	// relay answered, which says nothing of when it will take more.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string { return "throttled: " + e.Err.Error() }

func (e *ThrottledError) Unwrap() error { return e.Err }

// IsThrottled reports whether err is a ThrottledError.
func IsThrottled(err error) bool {
	var t *ThrottledError
	return errors.As(err, &t)
}

// throttling reports whether an SMTP reply asks the client to slow down
// rather than saying something about one message or mailbox:
//
//   - 421: the service is closing the channel (too many connections or
//     messages, RFC 5321 section 4.2.3);
//   - a 4xx whose enhanced status (RFC 3463) is 4.3.x (the mail system is
//     full or not accepting messages), 4.4.5 (system congestion) or 4.7.x
//     (a security or policy limit: where relays put their rate limits);
//   - a 4xx without an enhanced status whose text says so ("rate limit",
//     "too many", "throttl", "slow down").
//
// A 4xx about one mailbox (4.2.x: full, temporarily unavailable) is not:
// other messages should not wait for it.
func throttling(reply *textproto.Error) bool {
	switch {
	case reply.Code == 421:
		return true
	case reply.Code < 400 || reply.Code >= 500:
		return false
	}
	if class, subject, detail, ok := enhancedStatus(reply.Msg); ok && class == 4 {
		return subject == 3 || subject == 7 || (subject == 4 && detail == 5)
	}
	text := strings.ToLower(reply.Msg)
	for _, w := range []string{"rate limit", "too many", "throttl", "slow down"} {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// enhancedStatus reads the "4.7.1" at the start of a reply's text.
func enhancedStatus(msg string) (class, subject, detail int, ok bool) {
	f := strings.Fields(msg)
	if len(f) == 0 {
		return 0, 0, 0, false
	}
	parts := strings.Split(f[0], ".")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 999 {
			return 0, 0, 0, false
		}
		n[i] = v
	}
	return n[0], n[1], n[2], true
}

// pace slows this process's sending once a relay has said "slow down",
// and lets it speed up again when the relay stops saying so. The Temporal
// server already bounds the rate of every worker together (the send
// queues' rate, docs/delivery.md); pace is what a process does when the
// relay's patience is below that:
//
//   - the first throttling answer paces sends at half the rate the process
//     was sending at; each further one halves it again (answers within
//     cutEvery of each other count as one, since concurrent sends meet
//     the same limit at once), down to minRate;
//   - every second without one gives back 1/recoverIn of that first rate,
//     and once it is reached the process is unpaced again;
//   - a send that would have to wait more than maxWait is not made to
//     wait: it fails as throttled, and Temporal retries it later, so a
//     slow relay does not hold every activity slot.
type pace struct {
	now func() time.Time

	mu       sync.Mutex
	limit    float64 // sends a second; 0: unpaced
	peak     float64 // the rate when pacing began
	lastCut  time.Time
	lastGrow time.Time
	next     time.Time   // when the next paced send may start
	recent   []time.Time // the latest sends' start times, a ring
	at       int
}

const (
	cutEvery  = time.Second
	minRate   = 0.01
	maxWait   = 10 * time.Second
	recoverIn = 30 * time.Second
	paceRing  = 64
)

func newPace(now func() time.Time) *pace {
	if now == nil {
		now = time.Now
	}
	return &pace{now: now, recent: make([]time.Time, 0, paceRing)}
}

// reserve books the next send and returns how long it must wait first.
// It returns a ThrottledError when that would be longer than maxWait.
func (p *pace) reserve() (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.recover(now)
	start := now
	if p.limit > 0 {
		if p.next.After(now) {
			start = p.next
		}
		if wait := start.Sub(now); wait > maxWait {
			return 0, &ThrottledError{Err: fmt.Errorf("the relay asked to slow down: sending %.2f messages a second, the next free turn is %s away",
				p.limit, wait.Round(time.Second)), RetryAfter: wait}
		}
		p.next = start.Add(time.Duration(float64(time.Second) / p.limit))
	}
	if len(p.recent) < paceRing {
		p.recent = append(p.recent, start)
	} else {
		p.recent[p.at] = start
		p.at = (p.at + 1) % paceRing
	}
	return start.Sub(now), nil
}

// wait blocks until the next send may start.
func (p *pace) wait(ctx context.Context) error {
	d, err := p.reserve()
	if err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// throttled takes in a relay's "slow down".
func (p *pace) throttled() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.lastCut.IsZero() && now.Sub(p.lastCut) < cutEvery {
		return
	}
	p.lastCut, p.lastGrow = now, now
	if p.limit == 0 {
		p.peak = max(p.measured(now), 2*minRate)
		p.limit = p.peak / 2
		p.next = now.Add(time.Duration(float64(time.Second) / p.limit))
		return
	}
	p.limit = max(p.limit/2, minRate)
}

// recover gives back rate for the time since the last throttling answer.
func (p *pace) recover(now time.Time) {
	if p.limit == 0 {
		return
	}
	p.limit += p.peak * now.Sub(p.lastGrow).Seconds() / recoverIn.Seconds()
	p.lastGrow = now
	if p.limit >= p.peak {
		p.limit = 0
	}
}

// measured is the send rate of the last 10 seconds: the sends in it over
// the time they span, at least a second (a burst of n sends is n a
// second); a lone send counts as one in 10 seconds.
func (p *pace) measured(now time.Time) float64 {
	n := 0
	first := now
	for _, t := range p.recent {
		if now.Sub(t) <= 10*time.Second {
			n++
			if t.Before(first) {
				first = t
			}
		}
	}
	if n < 2 {
		return float64(n) / 10
	}
	return float64(n) / max(now.Sub(first).Seconds(), 1)
}

// Limit is the pace in messages a second; 0 when unpaced.
func (p *pace) Limit() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recover(p.now())
	return p.limit
}
