package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// VERP makes and checks per-message Return-Paths (variable envelope return
// paths): bounces+<token>@domain, where the token names the message and
// carries an HMAC over it and the recipient's address. A bounce that comes
// back to such an address proves lojal sent that message to that
// recipient, so it can be applied without trusting anything else in the
// report; a forger cannot make a token for an address without the key.
//
// The same mailbox takes unsubscribes by email: every message's
// List-Unsubscribe carries mailto:bounces+<token>@domain next to the https
// link, with a token of the same shape signed with a key of its own, so a
// bounce's Return-Path never reads as an unsubscribe, nor the other way.
type VERP struct {
	key      []byte
	unsubKey []byte
	local    string
	domain   string
}

// VERP tokens: 16 bytes naming the message and 10 bytes of HMAC, in
// lower-case base32 (local parts are matched case-insensitively by many
// servers, so the alphabet is too).
const (
	verpIDLen  = 16
	verpMACLen = 10
)

var verpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewVERP returns a VERP for bounce addresses like bounceAddress (its
// local part gets "+<token>"), signing with key.
func NewVERP(key []byte, bounceAddress string) (*VERP, error) {
	if len(key) < 16 {
		return nil, errors.New("VERP signing key must be at least 16 bytes")
	}
	a, err := mail.ParseAddress(bounceAddress)
	if err != nil {
		return nil, fmt.Errorf("bounce address %q: %w", bounceAddress, err)
	}
	local, domain, _ := strings.Cut(a.Address, "@")
	if strings.Contains(local, "+") {
		return nil, fmt.Errorf("bounce address %q: the part before @ may not contain + (lojal adds +<token> to it)", bounceAddress)
	}
	tokenLen := verpEncoding.EncodedLen(verpIDLen + verpMACLen)
	if len(local)+1+tokenLen > 64 {
		return nil, fmt.Errorf("bounce address %q: the part before @ must be at most %d characters to leave room for the token", bounceAddress, 63-tokenLen)
	}
	// Keys of their own, so a VERP token, an unsubscribe token and a link
	// signature can never be swapped for one another.
	return &VERP{key: derive(key, "lojal VERP v1"), unsubKey: derive(key, "lojal unsubscribe v1"), local: local,
		domain: strings.ToLower(domain)}, nil
}

func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Address returns the Return-Path for one message to one recipient.
func (v *VERP) Address(messageID, recipient string) string {
	id := verpID(messageID)
	return v.local + "+" + verpEncoding.EncodeToString(append(id, v.mac(v.key, id, recipient)...)) + "@" + v.domain
}

// Verify checks that addr is a Return-Path Address made for a message to
// recipient, and returns the message part of the token (hex). Any other
// address, or a token made for another recipient, is not verified.
func (v *VERP) Verify(addr, recipient string) (string, bool) {
	id, mac, ok := v.token(addr)
	if !ok || !hmac.Equal(mac, v.mac(v.key, id, recipient)) {
		return "", false
	}
	return hex.EncodeToString(id), true
}

// UnsubscribeAddress returns the address that unsubscribes the recipient
// of one message from its topic when mailed (the mailto: of
// List-Unsubscribe, RFC 2369).
func (v *VERP) UnsubscribeAddress(messageID string) string {
	id := verpID(messageID)
	return v.local + "+" + verpEncoding.EncodeToString(append(id, v.mac(v.unsubKey, id, "")...)) + "@" + v.domain
}

// VerifyUnsubscribe checks that addr is an UnsubscribeAddress and returns
// the message part of its token (hex), which names the message whose
// recipient asks to unsubscribe.
func (v *VERP) VerifyUnsubscribe(addr string) (string, bool) {
	id, mac, ok := v.token(addr)
	if !ok || !hmac.Equal(mac, v.mac(v.unsubKey, id, "")) {
		return "", false
	}
	return hex.EncodeToString(id), true
}

// token splits a bounces+<token>@domain address into the message part and
// the MAC of its token, without checking the MAC.
func (v *VERP) token(addr string) (id, mac []byte, ok bool) {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], v.domain) {
		return nil, nil, false
	}
	tag, ok := strings.CutPrefix(strings.ToLower(addr[:at]), strings.ToLower(v.local)+"+")
	if !ok || len(tag) != verpEncoding.EncodedLen(verpIDLen+verpMACLen) {
		return nil, nil, false
	}
	raw, err := verpEncoding.DecodeString(tag)
	if err != nil || verpEncoding.EncodeToString(raw) != tag {
		return nil, nil, false // one spelling per token
	}
	return raw[:verpIDLen], raw[verpIDLen:], true
}

func (v *VERP) mac(key, id []byte, recipient string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(id)
	m.Write([]byte{0})
	m.Write([]byte(strings.ToLower(strings.TrimSpace(recipient))))
	return m.Sum(nil)[:verpMACLen]
}

// verpID is the message part of a token: the Message-ID's 32 hex digits
// when it is one of lojal's own (activities.MessageID), so a person can
// find the message; a hash of it otherwise.
func verpID(messageID string) []byte {
	local, _, _ := strings.Cut(strings.Trim(messageID, "<>"), "@")
	if b, err := hex.DecodeString(local); err == nil && len(b) == verpIDLen {
		return b
	}
	sum := sha256.Sum256([]byte(messageID))
	return sum[:verpIDLen]
}
