package store

import (
	"context"
	"net"
	"strings"
	"syscall"
	"time"
)

// DeadPeerTimeout is how long a connection waits for Postgres to
// acknowledge what it sent (a query, a keepalive probe) before it is
// given up as dead. A long query is not cut short: a live server's kernel
// acknowledges the probes while it works.
const DeadPeerTimeout = 20 * time.Second

// Keepalive probes start after keepAliveIdle without traffic and repeat
// every keepAliveInterval.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 5 * time.Second
)

// dialer makes lojal's connections to Postgres notice a server that
// vanished: a host that died or a network that drops its packets (a
// failover to a standby) closes nothing, so without probes and a bound
// on unacknowledged data a query waits for its answer until Linux stops
// retransmitting (about 15 minutes). connectTimeout is the URL's
// connect_timeout (0: none).
func dialer(connectTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{
		Timeout:         connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: 3},
		Control: func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil // a Unix socket has no peer to lose
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setUserTimeout(fd, DeadPeerTimeout) }); err != nil {
				return err
			}
			return serr
		},
	}
	return d.DialContext
}
