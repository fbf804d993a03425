package store_test

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lojal/lojal/internal/pgtest"
	"github.com/lojal/lojal/internal/store"
)

// TestConnectionsGiveUpOnAVanishedServer: when the Postgres host dies or
// the network drops its packets (a failover to a standby), nothing closes
// lojal's connections to it. A query waiting for its answer was given up
// only when Linux stopped retransmitting (about 15 minutes), and an idle
// connection was found dead only by Go's keepalive (15 s idle, then 9
// probes 15 s apart): the sweeper and every request on such a connection
// hung meanwhile. Connections now probe after 15 s idle, every 5 s, three
// times, and give up after store.DeadPeerTimeout without an answer (TCP_USER_TIMEOUT).
// A dead peer cannot be made on loopback, so this checks the socket
// options the kernel enforces.
func TestConnectionsGiveUpOnAVanishedServer(t *testing.T) {
	t.Parallel()
	s := pgtest.Store(t)
	conn, err := s.Pool().Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tcp, ok := conn.Conn().PgConn().Conn().(*net.TCPConn)
	if !ok {
		t.Fatalf("connection is a %T, want TCP", conn.Conn().PgConn().Conn())
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string]int{}
	if err := raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
			"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
			"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		} {
			v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			opts[name] = v
		}
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3,
		"TCP_USER_TIMEOUT": int(store.DeadPeerTimeout / time.Millisecond)}
	for name, v := range want {
		if opts[name] != v {
			t.Errorf("%s = %d, want %d", name, opts[name], v)
		}
	}
}
