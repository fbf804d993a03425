package bounce

import (
	"net"
	"testing"
)

// serve runs the intake's SMTP server on a loopback port for one test.
func serve(t *testing.T, in *Intake, opts SMTPOptions) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go in.ServeSMTP(l, opts) //nolint:errcheck // ends when l closes
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}
