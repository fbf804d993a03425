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
	v1, _ := s.For("c-1", "service", "", now)
	unsub, prefs := s.For("c-1", "service", "<m-1@lojal.example>", now)
	if !strings.HasPrefix(unsub, "https://lojal.example/u/") || !strings.HasPrefix(prefs, "https://lojal.example/p/") {
		t.Fatalf("links %s %s", unsub, prefs)
	}
	tok := strings.TrimPrefix(unsub, "https://lojal.example/u/")
	c, err := s.Verify(Unsubscribe, tok, now)
	if err != nil || c.CustomerID != "c-1" || c.Topic != "service" || c.Kind != Unsubscribe || c.Message != "<m-1@lojal.example>" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	// A link made before links named their message still works.
	if c, err := s.Verify(Unsubscribe, strings.TrimPrefix(v1, "https://lojal.example/u/"), now); err != nil || c.CustomerID != "c-1" || c.Message != "" {
		t.Fatalf("verify a link without a message: %+v %v", c, err)
	}
	if _, err := s.Verify(Unsubscribe, tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	other, _ := NewSigner([]byte("another-key-of-enough-length-0123"), "https://lojal.example", time.Hour)
	if _, err := other.Verify(Unsubscribe, tok, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("other key: %v", err)
	}
	// Re-signing a changed payload needs the key: swap the customer and
	// keep the signature.
	forged := s.Token(Claims{Kind: Unsubscribe, CustomerID: "c-2", Topic: "service", Expires: c.Expires, Message: c.Message})
	forged = forged[:strings.Index(forged, ".")] + tok[strings.Index(tok, "."):]
	// Nor can the message be changed or dropped.
	otherMessage := s.Token(Claims{Kind: Unsubscribe, CustomerID: "c-1", Topic: "service", Expires: c.Expires, Message: "<m-2@lojal.example>"})
	otherMessage = otherMessage[:strings.Index(otherMessage, ".")] + tok[strings.Index(tok, "."):]
	dropped := s.Token(Claims{Kind: Unsubscribe, CustomerID: "c-1", Topic: "service", Expires: c.Expires})
	dropped = dropped[:strings.Index(dropped, ".")] + tok[strings.Index(tok, "."):]
	for _, bad := range []string{forged, otherMessage, dropped, tok + "x", "x" + tok, "", "no-dot", strings.Repeat("a", 2000), tok[:strings.Index(tok, ".")] + ".%%%"} {
		if _, err := s.Verify(Unsubscribe, bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("Verify(%.30q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := NewSigner([]byte("short"), "x", 0); err == nil {
		t.Error("short key accepted")
	}
}

// TestKindsAreNotInterchangeable: a valid link of one kind is invalid
// where the other kind is served, and re-labelling the kind breaks the
// signature.
func TestKindsAreNotInterchangeable(t *testing.T) {
	t.Parallel()
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", time.Hour)
	now := time.Now()
	unsub, prefs := s.For("c-1", "", "", now)
	u := strings.TrimPrefix(unsub, "https://lojal.example/u/")
	p := strings.TrimPrefix(prefs, "https://lojal.example/p/")
	if _, err := s.Verify(Preferences, u, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("unsubscribe token accepted as a preference link: %v", err)
	}
	if _, err := s.Verify(Unsubscribe, p, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("preference token accepted as an unsubscribe link: %v", err)
	}
	if _, err := s.Verify(Preferences, p, now); err != nil {
		t.Errorf("preference token: %v", err)
	}
	// Same payload with the kind swapped, signature kept.
	c, _ := s.Verify(Unsubscribe, u, now)
	c.Kind = Preferences
	relabelled := s.Token(c)
	relabelled = relabelled[:strings.Index(relabelled, ".")] + u[strings.Index(u, "."):]
	if _, err := s.Verify(Preferences, relabelled, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("relabelled token: %v", err)
	}
}

// TestNonCanonicalBase64IsInvalid: the signature's last character carries
// two padding bits; lenient decoding would accept four spellings of one
// token.
func TestNonCanonicalBase64IsInvalid(t *testing.T) {
	t.Parallel()
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", time.Hour)
	now := time.Now()
	tok := strings.TrimPrefix(s.URL(Claims{Kind: Preferences, CustomerID: "c-1", Expires: now.Add(time.Hour)}), "https://lojal.example/p/")
	for _, v := range spellings(tok) {
		if _, err := s.Verify(Preferences, v, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("variant %q of %q: %v, want ErrInvalid", v, tok, err)
		}
	}
}

// spellings returns the other spellings of tok whose last character
// differs only in padding bits (which lenient base64 ignores).
func spellings(tok string) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	var out []string
	for i := range 4 {
		if v := last&^3 | i; v != last {
			out = append(out, tok[:len(tok)-1]+string(alphabet[v]))
		}
	}
	return out
}

func FuzzVerify(f *testing.F) {
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", time.Hour)
	now := time.Unix(1_800_000_000, 0)
	good := s.Token(Claims{Kind: Unsubscribe, CustomerID: "c-1", Topic: "service", Expires: now.Add(time.Hour)})
	f.Add(Unsubscribe, good)
	f.Add(Preferences, good)
	f.Add(Unsubscribe, good+"A")
	f.Add(Unsubscribe, "djE.x")
	f.Add(Preferences, "")
	f.Fuzz(func(t *testing.T, kind, tok string) {
		c, err := s.Verify(kind, tok, now)
		if err != nil {
			return
		}
		// Whatever verifies was signed by us, for this kind, in canonical
		// form: re-signing the claims gives the same token back.
		if c.Kind != kind || s.Token(c) != tok {
			t.Fatalf("Verify(%q, %q) = %+v; re-signed %q", kind, tok, c, s.Token(c))
		}
	})
}
