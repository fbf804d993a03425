package activities

import (
	"testing"
	"time"
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
