package links

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAnswerLinks(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123"), "https://lojal.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	u := s.AnswerURL("quarterly", "kari", "checkin", "more-help", now)
	tok, ok := strings.CutPrefix(u, "https://lojal.example/a/")
	if !ok {
		t.Fatalf("url %q", u)
	}
	c, err := s.VerifyAnswer(tok, now)
	if err != nil || c.CustomerID != "kari" || c.Survey != "checkin" || c.Answer != "more-help" || c.Journey != "quarterly" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := s.VerifyAnswer(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired link: %v", err)
	}
	// Another customer's answer, another answer, a tampered signature, a
	// token of another kind: all invalid.
	other := s.AnswerToken(AnswerClaims{CustomerID: "ola", Survey: "checkin", Answer: "more-help", Expires: now.Add(time.Hour)})
	enc, sig, _ := strings.Cut(tok, ".")
	otherEnc, _, _ := strings.Cut(other, ".")
	for name, bad := range map[string]string{
		"swapped payload": otherEnc + "." + sig,
		"bad signature":   enc + "." + strings.Repeat("A", len(sig)),
		"preference link": s.Token(Claims{Kind: Preferences, CustomerID: "kari", Expires: now.Add(time.Hour)}),
		"empty":           "",
	} {
		if _, err := s.VerifyAnswer(bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if _, err := s.Verify(Preferences, tok, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("an answer token opens the preference centre: %v", err)
	}
}

// TestAnswerLinksSignedBeforeTheJourneyWasCarried: a v1 link, mailed
// before links named the journey that asked, still answers until it
// expires; it names no journey.
func TestAnswerLinksSignedBeforeTheJourneyWasCarried(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123"), "https://lojal.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	enc := base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{"v1", Answer, "kari", "checkin", "all-good",
		strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}, "\x1f")))
	c, err := s.VerifyAnswer(enc+"."+base64.RawURLEncoding.EncodeToString(s.mac(enc)), now)
	if err != nil || c.CustomerID != "kari" || c.Answer != "all-good" || c.Journey != "" {
		t.Fatalf("v1 link: %+v %v", c, err)
	}
	// A v1 payload with a journey part is neither version.
	enc = base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{"v1", Answer, "kari", "checkin", "all-good",
		strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "checkin"}, "\x1f")))
	if _, err := s.VerifyAnswer(enc+"."+base64.RawURLEncoding.EncodeToString(s.mac(enc)), now); !errors.Is(err, ErrInvalid) {
		t.Errorf("v1 with seven parts: %v", err)
	}
}
