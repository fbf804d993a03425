package channel

import (
	"net/mail"
	"strings"
	"testing"

	"github.com/lojal/lojal/internal/mailcatch"
)

// TestBuildReplyToAndHelperName: the message's own reply address is its
// Reply-To, and the helper's name, when given, is the From and Reply-To
// display name while the From address stays the sender's.
func TestBuildReplyToAndHelperName(t *testing.T) {
	t.Parallel()
	e := newEmail(t, EmailConfig{URL: "smtp://" + catcher(t, mailcatch.Options{}).Addr})
	env := envelope()
	env.ReplyTo = "reply+abc@bounces.example.com"
	env.FromName = "Ola \"the advisor\"\r\nBcc: x@example.com"
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
	if msg.Header.Get("Bcc") != "" {
		t.Fatal("a line break in the helper's name made a header of its own")
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != `Ola "the advisor" Bcc: x@example.com` || from[0].Address != e.from.Address {
		t.Fatalf("From %q: %v %v", msg.Header.Get("From"), from, err)
	}
	rt, err := msg.Header.AddressList("Reply-To")
	if err != nil || len(rt) != 1 || rt[0].Address != env.ReplyTo || rt[0].Name != from[0].Name {
		t.Fatalf("Reply-To %q: %v %v", msg.Header.Get("Reply-To"), rt, err)
	}
	env.ReplyTo = "not an address"
	if _, err := e.Build(env); err == nil {
		t.Fatal("a malformed reply address built")
	}
}
