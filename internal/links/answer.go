package links

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Answer is the kind of a one-click answer link (served at /a/).
const Answer = "a"

// AnswerClaims is what a one-click answer link grants: one customer's
// answer to one question.
type AnswerClaims struct {
	CustomerID string
	Survey     string
	Answer     string
	// Journey is the journey whose message asked: free text written with
	// the answer goes to that journey's helper. Empty in links signed
	// before it was carried (v1).
	Journey string
	Expires time.Time
}

// AnswerToken signs a one-click answer. Its payload has more parts than
// any other link's, so it can never verify as another kind, nor they as it.
func (s *Signer) AnswerToken(c AnswerClaims) string {
	payload := strings.Join([]string{"v2", Answer, c.CustomerID, c.Survey, c.Answer, strconv.FormatInt(c.Expires.Unix(), 10), c.Journey}, "\x1f")
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return enc + "." + base64.RawURLEncoding.EncodeToString(s.mac(enc))
}

// AnswerURL returns the link that answers survey with answer for one
// customer, asked by journeyID, valid for the signer's TTL from now.
func (s *Signer) AnswerURL(journeyID, customerID, survey, answer string, now time.Time) string {
	return fmt.Sprintf("%s/%s/%s", s.base, Answer, s.AnswerToken(AnswerClaims{CustomerID: customerID, Survey: survey, Answer: answer,
		Journey: journeyID, Expires: now.Add(s.ttl)}))
}

// VerifyAnswer checks a one-click answer token.
func (s *Signer) VerifyAnswer(token string, now time.Time) (AnswerClaims, error) {
	enc, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return AnswerClaims{}, ErrInvalid
	}
	got, err := strict.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(enc)) {
		return AnswerClaims{}, ErrInvalid
	}
	raw, err := strict.DecodeString(enc)
	if err != nil {
		return AnswerClaims{}, ErrInvalid
	}
	parts := strings.Split(string(raw), "\x1f")
	// v1 links (no journey) were mailed before v2 and stay valid until
	// they expire.
	v1 := len(parts) == 6 && parts[0] == "v1"
	v2 := len(parts) == 7 && parts[0] == "v2"
	if !(v1 || v2) || parts[1] != Answer {
		return AnswerClaims{}, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[5], 10, 64)
	if err != nil {
		return AnswerClaims{}, ErrInvalid
	}
	c := AnswerClaims{CustomerID: parts[2], Survey: parts[3], Answer: parts[4], Expires: time.Unix(exp, 0)}
	if v2 {
		c.Journey = parts[6]
	}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}
