package links

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Click is the kind of a tracked link (served at /k/): a signed redirect
// that records that the customer engaged with one message, then sends
// them where the template said. The destination is part of the signed
// payload, so the redirect can only ever go where lojal's own template
// pointed: there is no destination parameter to tamper with, and so no
// open redirect.
const Click = "k"

// Bounds on tracked links.
const (
	// MaxDestination bounds a tracked link's destination: a longer one is
	// an error when the message is rendered.
	MaxDestination = 2048
	// MaxClickToken bounds a token VerifyClick reads; anything longer is
	// invalid before it is decoded.
	MaxClickToken = 4096
)

// ClickClaims is what a tracked link grants: a redirect to URL that
// records a click by one customer on one message.
type ClickClaims struct {
	CustomerID string
	// MessageKey is the ledger idempotency key of the message the link
	// is in.
	MessageKey string
	// URL is the destination.
	URL     string
	Expires time.Time
}

// CheckDestination says what is wrong with a tracked link's destination:
// only absolute http and https addresses with a host, without a user
// name, of at most MaxDestination bytes are tracked.
func CheckDestination(dest string) error {
	if len(dest) > MaxDestination {
		return fmt.Errorf("the address is %d bytes, longer than the %d a tracked link may have", len(dest), MaxDestination)
	}
	u, err := url.Parse(dest)
	if err != nil {
		return fmt.Errorf("%.80q is not a valid address", dest)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return fmt.Errorf("%.80q: a tracked link must go to an http or https address (such as https://shop.example/offer)", dest)
	}
	if u.Host == "" {
		return fmt.Errorf("%.80q has no host name", dest)
	}
	if u.User != nil {
		return fmt.Errorf("%.80q carries a user name; a tracked link may not", dest)
	}
	return nil
}

// ClickToken signs a tracked link. Its payload has six parts, the kind
// second, so it never verifies as another kind of link nor they as it.
func (s *Signer) ClickToken(c ClickClaims) string {
	payload := strings.Join([]string{"v1", Click, c.CustomerID, c.MessageKey, strconv.FormatInt(c.Expires.Unix(), 10), c.URL}, "\x1f")
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return enc + "." + base64.RawURLEncoding.EncodeToString(s.mac(enc))
}

// ClickURL returns the tracked link to dest in the message messageKey to
// customerID, valid for the signer's TTL from now. A destination
// CheckDestination refuses is an error.
func (s *Signer) ClickURL(customerID, messageKey, dest string, now time.Time) (string, error) {
	if err := CheckDestination(dest); err != nil {
		return "", err
	}
	if strings.Contains(customerID+messageKey, "\x1f") {
		return "", errors.New("the customer id or message key holds a unit separator (0x1F)")
	}
	tok := s.ClickToken(ClickClaims{CustomerID: customerID, MessageKey: messageKey, URL: dest, Expires: now.Add(s.ttl)})
	if len(tok) > MaxClickToken {
		return "", fmt.Errorf("the tracked link would be %d bytes, longer than the %d lojal accepts", len(tok), MaxClickToken)
	}
	return fmt.Sprintf("%s/%s/%s", s.base, Click, tok), nil
}

// VerifyClick checks a tracked link's token. An invalid one yields no
// claims, so no destination; an expired one yields its claims with
// ErrExpired (it is ours, so still safe to follow).
func (s *Signer) VerifyClick(token string, now time.Time) (ClickClaims, error) {
	if len(token) > MaxClickToken {
		return ClickClaims{}, ErrInvalid
	}
	enc, sig, ok := strings.Cut(token, ".")
	if !ok {
		return ClickClaims{}, ErrInvalid
	}
	got, err := strict.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(enc)) {
		return ClickClaims{}, ErrInvalid
	}
	raw, err := strict.DecodeString(enc)
	if err != nil {
		return ClickClaims{}, ErrInvalid
	}
	parts := strings.SplitN(string(raw), "\x1f", 7)
	if len(parts) != 6 || parts[0] != "v1" || parts[1] != Click {
		return ClickClaims{}, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[4], 10, 64)
	if err != nil || CheckDestination(parts[5]) != nil {
		return ClickClaims{}, ErrInvalid
	}
	c := ClickClaims{CustomerID: parts[2], MessageKey: parts[3], Expires: time.Unix(exp, 0), URL: parts[5]}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}
