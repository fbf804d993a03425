// Package links makes and checks the signed links in every message: the
// one-click unsubscribe (RFC 8058) and the preference centre. A link names
// one customer, carries an expiry, and is HMAC-signed, so a tampered or
// expired link reveals nothing and changes nothing.
package links

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kinds of link.
const (
	Unsubscribe = "u"
	Preferences = "p"
	// Answered marks a conversation answered; its CustomerID names the
	// conversation.
	Answered = "c"
	// Confirm confirms a double opt-in request; the claims' Topic holds
	// the request's id.
	Confirm = "o"
)

// Claims is what a link grants.
type Claims struct {
	Kind       string
	CustomerID string
	// Topic is the topic a one-click unsubscribe opts out of; empty means
	// all messages.
	Topic   string
	Expires time.Time
	// Message is the Message-ID of the message an unsubscribe link came
	// in, so the unsubscribe is counted against that message's journey.
	// Links made before it was added have none.
	Message string
}

// Errors from Verify.
var (
	ErrInvalid = errors.New("link is not valid")
	ErrExpired = errors.New("link has expired")
)

// DefaultTTL is how long links work unless NewSigner is told otherwise.
const DefaultTTL = 90 * 24 * time.Hour

// Signer signs and verifies links.
type Signer struct {
	key  []byte
	base string
	ttl  time.Duration
}

// NewSigner returns a signer. base is the public URL of the API (where
// /u/ and /p/ are served); ttl is how long links work.
func NewSigner(key []byte, base string, ttl time.Duration) (*Signer, error) {
	if len(key) < 16 {
		return nil, errors.New("link signing key must be at least 16 bytes")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Signer{key: key, base: strings.TrimSuffix(base, "/"), ttl: ttl}, nil
}

// Token signs claims. The kind is part of the signed payload. Claims
// without a Message make the same (v1) token as before Message was added;
// with one, a v2 token carries it as a sixth field.
func (s *Signer) Token(c Claims) string {
	fields := []string{"v1", c.Kind, c.CustomerID, c.Topic, strconv.FormatInt(c.Expires.Unix(), 10)}
	if c.Message != "" {
		fields = append(fields, c.Message)
		fields[0] = "v2"
	}
	payload := strings.Join(fields, "\x1f")
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return enc + "." + base64.RawURLEncoding.EncodeToString(s.mac(enc))
}

func (s *Signer) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return m.Sum(nil)[:20]
}

// URL returns the link for claims.
func (s *Signer) URL(c Claims) string {
	return fmt.Sprintf("%s/%s/%s", s.base, c.Kind, s.Token(c))
}

// For returns the unsubscribe and preference links for one message;
// messageID (its Message-ID, or "") goes in the unsubscribe link.
func (s *Signer) For(customerID, topic, messageID string, now time.Time) (unsubscribe, preferences string) {
	exp := now.Add(s.ttl)
	return s.URL(Claims{Kind: Unsubscribe, CustomerID: customerID, Topic: topic, Expires: exp, Message: messageID}),
		s.URL(Claims{Kind: Preferences, CustomerID: customerID, Expires: exp})
}

// strict decodes only the canonical encoding: a token has one spelling,
// so a variant of a valid token (other padding bits) is not valid too.
var strict = base64.RawURLEncoding.Strict()

// Verify checks a token presented where a link of kind is served and
// returns its claims. A valid token of another kind is invalid here: an
// unsubscribe link cannot open the preference centre, nor a preference
// link unsubscribe.
func (s *Signer) Verify(kind, token string, now time.Time) (Claims, error) {
	enc, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return Claims{}, ErrInvalid
	}
	got, err := strict.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(enc)) {
		return Claims{}, ErrInvalid
	}
	raw, err := strict.DecodeString(enc)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	parts := strings.Split(string(raw), "\x1f")
	if !(len(parts) == 5 && parts[0] == "v1" || len(parts) == 6 && parts[0] == "v2" && parts[5] != "") || parts[1] != kind {
		return Claims{}, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[4], 10, 64)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	c := Claims{Kind: parts[1], CustomerID: parts[2], Topic: parts[3], Expires: time.Unix(exp, 0)}
	if len(parts) == 6 {
		c.Message = parts[5]
	}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}
