package bounce

import (
	"strings"
	"testing"
)

func TestReplyAddress(t *testing.T) {
	t.Parallel()
	v, err := NewVERP([]byte("0123456789abcdef0123"), "bounces@mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	const msg = "0123456789abcdef0123456789abcdef@example.com"
	addr := v.ReplyAddress(msg)
	if !strings.HasPrefix(addr, "reply+") || !strings.HasSuffix(addr, "@mail.example.com") || len(strings.Split(addr, "@")[0]) > 64 {
		t.Fatalf("reply address %q", addr)
	}
	id, ok := v.VerifyReply(strings.ToUpper(addr))
	if !ok || id != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("VerifyReply(%q) = %q, %v", addr, id, ok)
	}
	if !v.IsReplyAddress(addr) {
		t.Error("not seen as a reply address")
	}
	// A reply address is no Return-Path nor unsubscribe address, and
	// neither of those is a reply address.
	if _, ok := v.VerifyUnsubscribe(addr); ok {
		t.Error("reply address verifies as an unsubscribe address")
	}
	for _, other := range []string{v.Address(msg, "kari@example.com"), v.UnsubscribeAddress(msg)} {
		if _, ok := v.VerifyReply(other); ok {
			t.Errorf("%q verifies as a reply address", other)
		}
	}
	// A forged token, another domain, or a token signed with another key.
	tok := strings.TrimPrefix(strings.Split(addr, "@")[0], "reply+")
	forged := "reply+" + tok[:len(tok)-1] + string("ab"[strings.IndexByte("ab", tok[len(tok)-1])+1&1]) + "@mail.example.com"
	other, _ := NewVERP([]byte("another-key-0123456789"), "bounces@mail.example.com")
	for _, bad := range []string{forged, strings.Replace(addr, "mail.example.com", "evil.example", 1), other.ReplyAddress(msg), "reply+@mail.example.com"} {
		if _, ok := v.VerifyReply(bad); ok {
			t.Errorf("VerifyReply(%q) verified", bad)
		}
	}
}
