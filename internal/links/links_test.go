package links

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example/", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	unsub, prefs := s.For("c-1", "service", now)
	if !strings.HasPrefix(unsub, "https://lojal.example/u/") || !strings.HasPrefix(prefs, "https://lojal.example/p/") {
		t.Fatalf("links %s %s", unsub, prefs)
	}
	tok := strings.TrimPrefix(unsub, "https://lojal.example/u/")
	c, err := s.Verify(tok, now)
	if err != nil || c.CustomerID != "c-1" || c.Topic != "service" || c.Kind != Unsubscribe {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := s.Verify(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	other, _ := NewSigner([]byte("another-key-of-enough-length-0123"), "https://lojal.example", time.Hour)
	if _, err := other.Verify(tok, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("other key: %v", err)
	}
	// Re-signing a changed payload needs the key: swap the customer and
	// keep the signature.
	forged := s.Token(Claims{Kind: Unsubscribe, CustomerID: "c-2", Topic: "service", Expires: c.Expires})
	forged = forged[:strings.Index(forged, ".")] + tok[strings.Index(tok, "."):]
	for _, bad := range []string{forged, tok + "x", "x" + tok, "", "no-dot", strings.Repeat("a", 2000), tok[:strings.Index(tok, ".")] + ".%%%"} {
		if _, err := s.Verify(bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("Verify(%.30q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := NewSigner([]byte("short"), "x", 0); err == nil {
		t.Error("short key accepted")
	}
}
