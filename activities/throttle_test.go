package activities

import (
	"errors"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/channel"
)

func TestThrottleDelayGrows(t *testing.T) {
	t.Parallel()
	want := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		attempt := int32(i + 1)
		if got := throttleDelay(attempt, 0); got != w {
			t.Errorf("attempt %d: %s, want %s", attempt, got, w)
		}
		if got := throttleDelay(attempt, 0.999); got < w || got > w+w/5 {
			t.Errorf("attempt %d with jitter: %s, want within a fifth above %s", attempt, got, w)
		}
	}
}

// TestRetryDelay: a message the relay throttled waits throttleDelay; one
// this process held back itself comes back at its turn, whatever the
// attempt, rather than pausing longer and longer for a relay it never
// reached.
func TestRetryDelay(t *testing.T) {
	t.Parallel()
	relay := &channel.ThrottledError{Err: errors.New("451 4.7.1")}
	local := &channel.ThrottledError{Err: errors.New("paced"), RetryAfter: 12 * time.Second}
	if got := retryDelay(relay, 4, 0); got != 2*time.Minute {
		t.Errorf("relay, attempt 4: %s", got)
	}
	for _, attempt := range []int32{1, 4, 9} {
		if got := retryDelay(local, attempt, 0.5); got < 12*time.Second || got > 12*time.Second+12*time.Second/5 {
			t.Errorf("held back, attempt %d: %s, want its turn (12 s) and a little jitter", attempt, got)
		}
	}
}
