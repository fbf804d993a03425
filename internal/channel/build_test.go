package channel

import (
	"net/mail"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/mailcatch"
)

// TestBuildFailureIsNotABounce: a recipient lojal cannot put in a header
// fails the message; only a server refusing the address is a bounce.
func TestBuildFailureIsNotABounce(t *testing.T) {
	t.Parallel()
	e := newEmail(t, EmailConfig{URL: "smtp://" + catcher(t, mailcatch.Options{}).Addr})
	for _, to := range []string{"not-an-address", "kari@example.no\r\nBcc: x@example.no", "Kari <kari@example.no>", ""} {
		env := envelope()
		env.To = to
		_, err := e.Build(env)
		perm, ok := IsPermanent(err)
		if !ok || perm.Bounce {
			t.Errorf("Build(To %q) = %v, want a permanent error that is not a bounce", to, err)
		}
	}
	// Quotes, backslashes and non-ASCII in the name are encoded, not a
	// reason to fail.
	env := envelope()
	env.ToName = `Kari "K" Nord\mann Ødegård`
	m, err := e.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != env.ToName || to[0].Address != "kari@example.no" {
		t.Fatalf("To %q: %v %v", msg.Header.Get("To"), to, err)
	}
}
