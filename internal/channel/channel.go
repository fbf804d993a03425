// Package channel delivers rendered messages: email over SMTP with
// wneessen/go-mail, and push. Both sit behind Sender, so the send activity
// does not care which it talks to.
package channel

import (
	"context"
	"errors"
	"fmt"

	"github.com/lojal/lojal/internal/render"
)

// Envelope is one message to one recipient.
type Envelope struct {
	Channel string
	// To is the email address, or the customer id for push.
	To     string
	ToName string
	// MessageID is derived from the ledger's idempotency key, so a retried
	// send carries the same Message-ID.
	MessageID      string
	IdempotencyKey string
	Message        render.Message
	// Unsubscribe is the signed one-click unsubscribe URL (RFC 8058).
	Unsubscribe string
	// UnsubscribeMail, when set, is an address that unsubscribes by email
	// (the inbound intake reads it); List-Unsubscribe offers it after the
	// https link, for mail clients that only know mailto: (RFC 2369).
	UnsubscribeMail string
	// ReturnPath, when set, is this message's envelope sender (its VERP
	// address), instead of the configured one.
	ReturnPath string
	// ReplyTo, when set, is this message's own signed reply address
	// (bounce.VERP.ReplyAddress): a reply reaches the inbound intake and
	// names the message it answers.
	ReplyTo string
	// FromName, when set, is the From display name (the helper's name
	// when the journey says from_helper); the address stays the sender's.
	FromName string
	// Push subscriptions to deliver to.
	Push []PushSubscription
	// Confirm, when set, is the last check before the commit point: email
	// calls it once the server holds the whole message and before telling
	// it to deliver (the final "." of DATA); if Confirm fails, the message
	// is abandoned and not delivered. Push has no such point; the send
	// activity records each subscription's request before and after it
	// (SubscriptionSender).
	Confirm func() error
	// HandOver, when set, is the commit point: email calls it right before
	// it writes the final ".", and calls the function it returns once the
	// server has answered (or not). It lets the caller send its record
	// that the server may have the message so that record and "." leave
	// the process back to back (activities.deliverEmail). An error from
	// HandOver is a last refusal, as from Confirm: the "." is not written
	// and the server discards the message.
	HandOver func() (wait func() error, err error)
}

// Receipt says what happened to a sent message.
type Receipt struct {
	// Delivered counts push subscriptions (or 1 for email) that accepted.
	Delivered int
	// Expired lists push subscriptions the provider said are gone (404/410).
	Expired []PushSubscription
}

// Sender delivers envelopes.
type Sender interface {
	Send(ctx context.Context, env Envelope) (Receipt, error)
}

// PermanentError is a failure that retrying cannot fix: the address does not
// exist, the server refuses the message for good.
type PermanentError struct {
	Code int
	// Bounce is true when the recipient address itself was refused, which
	// is a hard bounce: the address is suppressed.
	Bounce bool
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Code > 0 {
		return fmt.Sprintf("permanent failure (%d): %v", e.Code, e.Err)
	}
	return fmt.Sprintf("permanent failure: %v", e.Err)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) (*PermanentError, bool) {
	var p *PermanentError
	ok := errors.As(err, &p)
	return p, ok
}

// UncertainError means the message may have been delivered: it was handed
// over in full (email: the final "." of DATA) and no answer came back, so
// nothing proves the server did not take it. Such a message counts as sent
// and is never sent again automatically (RFC 1047 describes the duplicates
// that resending causes).
type UncertainError struct {
	Err error
}

func (e *UncertainError) Error() string { return "delivery uncertain: " + e.Err.Error() }

func (e *UncertainError) Unwrap() error { return e.Err }

// IsUncertain reports whether err is an UncertainError.
func IsUncertain(err error) bool {
	var u *UncertainError
	return errors.As(err, &u)
}

// Mux routes envelopes to the sender for their channel.
type Mux map[string]Sender

// Send implements Sender.
func (m Mux) Send(ctx context.Context, env Envelope) (Receipt, error) {
	s, ok := m[env.Channel]
	if !ok {
		return Receipt{}, &PermanentError{Err: fmt.Errorf("no sender for channel %q", env.Channel)}
	}
	return s.Send(ctx, env)
}

// SendTo implements SubscriptionSender with the mux's sender for the
// envelope's channel. A sender that only implements Sender is given the one
// subscription, and its answer is read as that subscription's outcome.
func (m Mux) SendTo(ctx context.Context, env Envelope, sub PushSubscription) PushOutcome {
	s, ok := m[env.Channel]
	if !ok {
		return PushOutcome{State: PushFailed, Err: fmt.Errorf("no sender for channel %q", env.Channel)}
	}
	if ss, ok := s.(SubscriptionSender); ok {
		return ss.SendTo(ctx, env, sub)
	}
	env.Push = []PushSubscription{sub}
	rc, err := s.Send(ctx, env)
	_, permanent := IsPermanent(err)
	switch {
	case err == nil && rc.Delivered > 0:
		return PushOutcome{State: PushSent}
	case len(rc.Expired) > 0 || errors.Is(err, ErrNoLiveSubscription):
		return PushOutcome{State: PushGone, Err: err}
	case IsUncertain(err):
		return PushOutcome{State: PushUncertain, Err: err}
	case permanent:
		return PushOutcome{State: PushFailed, Err: err}
	case err != nil:
		return PushOutcome{State: PushRetry, Err: err}
	}
	return PushOutcome{State: PushFailed, Err: errors.New("the push sender took nothing and gave no reason")}
}
