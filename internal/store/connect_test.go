package store_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lojal/lojal/internal/store"
)

// TestOpenGivesUpOnAServerThatNeverAnswers: a Postgres address that takes
// the connection and never answers (a hung server, a proxy in front of a
// dead one) held lojal's start for good, with nothing logged: pgx waits
// forever without connect_timeout, and the pod was killed by its startup
// probe with empty logs. Open gives up after the default connect timeout
// and says where it was connecting.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	_, err = store.Open(ctx, store.Config{URL: "postgres://lojal:hunter2@" + l.Addr().String() + "/lojal?sslmode=disable"})
	took := time.Since(start)
	if err == nil || ctx.Err() != nil || took > store.DefaultConnectTimeout+5*time.Second {
		t.Fatalf("after %s: %v (context: %v), want an error within the %s default", took.Round(time.Millisecond), err, ctx.Err(), store.DefaultConnectTimeout)
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("the error must name the address and not the password: %v", err)
	}
	// lojal migrate's connection too.
	start = time.Now()
	_, err = store.Apply(ctx, store.Config{URL: "postgres://lojal:hunter2@" + l.Addr().String() + "/lojal?sslmode=disable"}, nil)
	if took := time.Since(start); err == nil || ctx.Err() != nil || took > store.DefaultConnectTimeout+5*time.Second {
		t.Fatalf("migrate after %s: %v (context: %v)", took.Round(time.Millisecond), err, ctx.Err())
	}
}
