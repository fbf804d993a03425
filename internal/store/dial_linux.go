package store

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout bounds how long data sent on the socket may go
// unacknowledged before the kernel closes it (TCP_USER_TIMEOUT).
func setUserTimeout(fd uintptr, d time.Duration) error {
	if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond)); err != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT on the Postgres connection: %w", err)
	}
	return nil
}
