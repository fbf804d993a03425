package devstack

import (
	"errors"
	"strings"
	"testing"
)

// TestTemporalExitNamesALostPortRace: a dev server that loses a port race
// to another process while it starts its services panics with the bind
// error first and a long stack after it. The start is retried on new
// ports only if the error says the port was taken; the last 2,000 bytes
// of the log were all it said, and they held only the stack, so a lost
// race failed the caller (TestFaultSweeperWorkerStopped failed in a
// clean-clone CI run that way).
func TestTemporalExitNamesALostPortRace(t *testing.T) {
	stack := strings.Repeat("go.temporal.io/server/temporal.NewServerFx(...)\n\t/root/go/pkg/mod/go.temporal.io/server@v1.29.1/temporal/fx.go:149 +0x19e\n", 60)
	log := "panic: listen tcp 127.0.0.1:41234: bind: address already in use\n\ngoroutine 1 [running]:\n" + stack
	err := exitedDuringStart([]byte(log))
	if !errors.Is(err, errPortTaken) {
		t.Errorf("a lost port race is not named as one: %v", err)
	}
	if !strings.Contains(err.Error(), "bind: address already in use") || !strings.Contains(err.Error(), "fx.go:149") {
		t.Errorf("the error should show the log's first line and its end: %v", err)
	}
	if err := exitedDuringStart([]byte("panic: something else\n" + stack)); errors.Is(err, errPortTaken) {
		t.Errorf("another failure named a lost port race: %v", err)
	}
}
