package bounce

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"strings"
)

// ReplyLocal is the part before @ of every reply address: replies come to
// reply+<token>@ the bounce domain, so the same inbound listener takes
// them, and a reply address can never be read as a Return-Path or an
// unsubscribe address (their local part is the bounce address's, and
// their tokens are signed with keys of their own).
const ReplyLocal = "reply"

// ReplyAddress returns the Reply-To address of one message: a reply to it
// proves which message it answers, whoever sends it.
func (v *VERP) ReplyAddress(messageID string) string {
	id := verpID(messageID)
	return ReplyLocal + "+" + verpEncoding.EncodeToString(append(id, v.mac(v.replyKey(), id, "")...)) + "@" + v.domain
}

// VerifyReply checks that addr is a ReplyAddress and returns the message
// part of its token (hex): the left-hand side of lojal's Message-ID of the
// message replied to.
func (v *VERP) VerifyReply(addr string) (string, bool) {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], v.domain) {
		return "", false
	}
	tag, ok := strings.CutPrefix(strings.ToLower(addr[:at]), ReplyLocal+"+")
	if !ok || len(tag) != verpEncoding.EncodedLen(verpIDLen+verpMACLen) {
		return "", false
	}
	raw, err := verpEncoding.DecodeString(tag)
	if err != nil || verpEncoding.EncodeToString(raw) != tag {
		return "", false
	}
	id, mac := raw[:verpIDLen], raw[verpIDLen:]
	if !hmac.Equal(mac, v.mac(v.replyKey(), id, "")) {
		return "", false
	}
	return hex.EncodeToString(id), true
}

// IsReplyAddress reports whether addr has the form of a reply address,
// signed or not: mail to one is a reply, never a report.
func (v *VERP) IsReplyAddress(addr string) bool {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	return at > 0 && strings.EqualFold(addr[at+1:], v.domain) && strings.HasPrefix(strings.ToLower(addr[:at]), ReplyLocal+"+")
}

// replyKey is derived from the VERP key, so it needs no configuration of
// its own and still cannot sign a Return-Path or an unsubscribe address.
func (v *VERP) replyKey() []byte { return derive(v.key, "lojal reply v1") }

// MaxReplySize is the largest reply the intake takes: a larger one is
// refused with 552 5.3.4, at RCPT when the client declared its SIZE, else
// at the end of DATA.
const MaxReplySize = 512 << 10

// ErrReplyMalformed refuses a reply that is not a readable message
// (550 5.6.0).
var ErrReplyMalformed = errors.New("malformed reply")

// ReplyTaker takes replies (internal/dialogue). handled is false when no
// recipient is a reply address. An error wrapping ErrReplyMalformed is
// refused for good; any other asks the sender to try again.
type ReplyTaker interface {
	TakeReply(ctx context.Context, mailFrom string, envelopeTo []string, raw []byte) (handled bool, err error)
}
