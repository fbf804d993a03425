//go:build !linux

package store

import "time"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist; the
// keepalive probes still find a dead idle connection.
func setUserTimeout(uintptr, time.Duration) error { return nil }
