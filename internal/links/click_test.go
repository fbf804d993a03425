package links

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClickLinks(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123"), "https://lojal.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	dest := "https://shop.example/offer?id=7&utm=x#top"
	u, err := s.ClickURL("kari", "w/send#1.1", dest, now)
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := strings.CutPrefix(u, "https://lojal.example/k/")
	if !ok {
		t.Fatalf("url %q", u)
	}
	c, err := s.VerifyClick(tok, now)
	if err != nil || c.CustomerID != "kari" || c.MessageKey != "w/send#1.1" || c.URL != dest || !c.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("%+v %v", c, err)
	}
	// An expired link is still ours: its claims come back with ErrExpired.
	if c, err := s.VerifyClick(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) || c.URL != dest {
		t.Errorf("expired link: %+v %v", c, err)
	}
	evil := s.ClickToken(ClickClaims{CustomerID: "kari", MessageKey: "w/send#1.1", URL: "https://evil.example/", Expires: now.Add(time.Hour)})
	enc, sig, _ := strings.Cut(tok, ".")
	evilEnc, _, _ := strings.Cut(evil, ".")
	other, _ := NewSigner([]byte("another-key-of-enough-length"), "https://lojal.example", time.Hour)
	for name, bad := range map[string]string{
		"another destination, same signature": evilEnc + "." + sig,
		"bad signature":                       enc + "." + strings.Repeat("A", len(sig)),
		"truncated signature":                 tok[:len(tok)-3],
		"truncated payload":                   enc[4:] + "." + sig,
		"no signature":                        enc,
		"signed with another key":             other.ClickToken(ClickClaims{CustomerID: "kari", URL: dest, Expires: now.Add(time.Hour)}),
		"a preference link":                   s.Token(Claims{Kind: Preferences, CustomerID: "kari", Expires: now.Add(time.Hour)}),
		"an answer link":                      s.AnswerToken(AnswerClaims{CustomerID: "kari", Survey: "x", Answer: "y", Expires: now.Add(time.Hour)}),
		"oversized":                           strings.Repeat("A", MaxClickToken) + "." + sig,
		"empty":                               "",
	} {
		if c, err := s.VerifyClick(bad, now); !errors.Is(err, ErrInvalid) || c.URL != "" {
			t.Errorf("%s: %+v %v, want invalid and no destination", name, c, err)
		}
	}
	// A click token opens nothing else.
	if _, err := s.Verify(Preferences, tok, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("a click token opens the preference centre: %v", err)
	}
	if _, err := s.VerifyAnswer(tok, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("a click token answers: %v", err)
	}
	for _, v := range spellings(tok) {
		if _, err := s.VerifyClick(v, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("variant spelling %q: %v", v, err)
		}
	}
}

// TestClickDestinations: only absolute http and https addresses of
// bounded length are signed; anything else is an error at render time.
func TestClickDestinations(t *testing.T) {
	t.Parallel()
	s, _ := NewSigner([]byte("0123456789abcdef0123"), "https://lojal.example", time.Hour)
	now := time.Unix(1_800_000_000, 0)
	for _, ok := range []string{"https://shop.example", "http://shop.example/a?b=c", "HTTPS://Shop.Example/x", "https://shop.example:8443/å"} {
		if _, err := s.ClickURL("kari", "k", ok, now); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"javascript:alert(1)":                     "http or https",
		"data:text/html,<script>":                 "http or https",
		"mailto:kari@example.no":                  "http or https",
		"//shop.example/offer":                    "http or https",
		"/offer":                                  "http or https",
		"https:///nohost":                         "no host",
		"https://user:pw@shop.example/":           "user name",
		"https://shop.example/\x00":               "not a valid address",
		"https://shop.example/a b\r\nLocation: x": "not a valid address",
		"https://shop.example/" + strings.Repeat("a", MaxDestination): "longer than",
		"": "http or https",
	} {
		_, err := s.ClickURL("kari", "k", bad, now)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want an error saying %q", bad, err, want)
		}
	}
}

func FuzzVerifyClick(f *testing.F) {
	s, _ := NewSigner([]byte("0123456789abcdef0123456789abcdef"), "https://lojal.example", time.Hour)
	now := time.Unix(1_800_000_000, 0)
	good := s.ClickToken(ClickClaims{CustomerID: "c-1", MessageKey: "w/s#1.1", URL: "https://shop.example/x", Expires: now.Add(time.Hour)})
	f.Add(good)
	f.Add(good + "A")
	f.Add(good[:len(good)-1])
	f.Add(s.Token(Claims{Kind: Preferences, CustomerID: "c-1", Expires: now.Add(time.Hour)}))
	f.Add("djE.x")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.VerifyClick(tok, now)
		if err != nil && !errors.Is(err, ErrExpired) {
			if c.URL != "" {
				t.Fatalf("invalid token %q yields destination %q", tok, c.URL)
			}
			return
		}
		// Whatever verifies was signed by us in canonical form, and goes
		// only to a web address.
		if s.ClickToken(c) != tok {
			t.Fatalf("VerifyClick(%q) = %+v; re-signed %q", tok, c, s.ClickToken(c))
		}
		if err := CheckDestination(c.URL); err != nil {
			t.Fatalf("verified destination %q: %v", c.URL, err)
		}
	})
}
