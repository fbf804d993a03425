package bounce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/store"
)

// Ledger is what the intake needs from the store: which messages lojal
// sent, and suppression.
type Ledger interface {
	// SentTo finds the message lojal sent (or began sending) to address
	// that has Message-ID messageID or idempotency key key (either may be
	// empty). found is false when there is none.
	SentTo(ctx context.Context, address, messageID, key string) (sent store.SentMessage, found bool, err error)
	// Suppress records that nothing may be sent to an address again.
	Suppress(ctx context.Context, channel, address, reason, detail string) error
	// Complain records a complaint about a message (it counts towards the
	// spam rate) and suppresses the address.
	Complain(ctx context.Context, channel, address, messageID, detail string) error
	// MessageByID finds the email lojal sent with Message-ID messageID.
	MessageByID(ctx context.Context, messageID string) (sent store.SentMessage, found bool, err error)
	// Unsubscribe does what a one-click unsubscribe does (store.Store.Unsubscribe).
	Unsubscribe(ctx context.Context, customerID, topic string, allTopics []string, c store.Capture) error
}

// Errors from Apply besides parse errors.
var (
	// ErrStore means a report was understood but could not be recorded;
	// the sender should try again.
	ErrStore = errors.New("could not record report")
	// ErrNoMatch means no recipient of the report matched a message lojal
	// sent to that recipient: nothing was changed.
	ErrNoMatch = errors.New("the report matches no message lojal sent to the address it names")
)

// Intake applies reports: hard bounces and complaints suppress the address;
// soft bounces are logged (the next send retries and may bounce hard). A
// recipient counts only when the report is about a message lojal sent to
// it: the report came back to that message's VERP Return-Path, or quotes
// the Message-ID or X-Lojal-Key of a ledger row with that address.
// Anything else changes nothing.
type Intake struct {
	Store Ledger
	// VERP checks Return-Path tokens; nil matches by Message-ID and key
	// only.
	VERP *VERP
	Log  *slog.Logger
	// MessageDomain is the right-hand side of lojal's Message-IDs (the
	// From address's domain): an unsubscribe address names its message by
	// the left-hand side.
	MessageDomain string
	// Topics lists the topics of the journeys in force: an unsubscribe
	// from a message without a topic opts out of all of them. May be nil.
	Topics func() []string
	// Replies takes mail to reply addresses (VERP.ReplyAddress); nil
	// takes every message as a report.
	Replies ReplyTaker
	// Now is the clock (tests set it).
	Now func() time.Time
	// Metrics counts reports (lojal_bounce_reports_total); may be nil.
	Metrics *metrics.Metrics
}

// Outcome is what Apply did with each recipient of a report.
type Outcome struct {
	Report  Report
	Results []Result
}

// Result is what happened to one recipient.
type Result struct {
	Recipient
	// Applied is true when the recipient matched a message lojal sent it
	// (and, for a hard bounce or complaint, the address is suppressed).
	Applied bool `json:"applied"`
	// Match says how: verp, message-id or key. Empty when not applied.
	Match string `json:"match,omitempty"`
	// Message names the message, when known.
	Message string `json:"message,omitempty"`
	// Ignored says why a recipient changed nothing.
	Ignored string `json:"ignored,omitempty"`
}

// Apply parses one report and acts on it. envelopeTo are the addresses
// the report was delivered to over SMTP (where the VERP token is); the
// webhook has none and relies on the report's own headers. A message that
// is not a report returns ErrNotAReport and a report that matches no sent
// message ErrNoMatch; neither changes anything.
func (in *Intake) Apply(ctx context.Context, r io.Reader, envelopeTo ...string) (out Outcome, err error) {
	defer func() { in.Metrics.BounceReport(reportVia(envelopeTo), reportResult(err)) }()
	return in.apply(ctx, r, envelopeTo)
}

func (in *Intake) apply(ctx context.Context, r io.Reader, envelopeTo []string) (Outcome, error) {
	rep, err := Parse(r)
	out := Outcome{Report: rep}
	if err != nil {
		return out, err
	}
	returnPaths := append(append([]string{}, envelopeTo...), rep.ReturnPaths...)
	applied := 0
	for _, rc := range rep.Recipients {
		res, err := in.match(ctx, rep, rc, returnPaths)
		if err != nil {
			return out, err
		}
		if res.Applied {
			applied++
			if err := in.act(ctx, res); err != nil {
				return out, err
			}
		} else {
			in.Log.Warn("bounce report recipient ignored", "address", rc.Address, "kind", rc.Kind, "why", res.Ignored,
				"message_id", rep.MessageID)
		}
		out.Results = append(out.Results, res)
	}
	if applied == 0 {
		return out, ErrNoMatch
	}
	return out, nil
}

// reportVia names how a report came in: over SMTP it has envelope
// recipients, through the webhook none.
func reportVia(envelopeTo []string) string {
	if len(envelopeTo) > 0 {
		return "smtp"
	}
	return "webhook"
}

func reportResult(err error) string {
	switch {
	case err == nil:
		return "applied"
	case errors.Is(err, ErrNoMatch):
		return "no_match"
	case errors.Is(err, ErrNotAReport):
		return "not_a_report"
	}
	return "error"
}

// match finds the message lojal sent to rc that the report is about.
func (in *Intake) match(ctx context.Context, rep Report, rc Recipient, returnPaths []string) (Result, error) {
	res := Result{Recipient: rc}
	addrs := []string{rc.Address}
	if rc.Original != "" {
		addrs = append(addrs, rc.Original)
	}
	for _, addr := range addrs {
		if in.VERP != nil {
			for _, rp := range returnPaths {
				if id, ok := in.VERP.Verify(rp, addr); ok {
					res.Address, res.Applied, res.Match, res.Message = addr, true, "verp", id
					return res, nil
				}
			}
		}
		if rep.MessageID == "" && rep.Key == "" {
			continue
		}
		sent, found, err := in.Store.SentTo(ctx, addr, rep.MessageID, rep.Key)
		if err != nil {
			return res, fmt.Errorf("%w: match %s: %v", ErrStore, addr, err)
		}
		if found {
			res.Address, res.Applied, res.Message = addr, true, sent.MessageID
			res.Match = "message-id"
			if rep.MessageID == "" || !strings.EqualFold(sent.MessageID, rep.MessageID) {
				res.Match = "key"
			}
			return res, nil
		}
	}
	switch {
	case in.VERP == nil && rep.MessageID == "" && rep.Key == "":
		res.Ignored = "the report quotes no Message-ID or X-Lojal-Key"
	default:
		res.Ignored = "no message lojal sent to this address matches the report"
	}
	return res, nil
}

func (in *Intake) act(ctx context.Context, res Result) error {
	switch res.Kind {
	case HardBounce, Complaint:
		detail := strings.TrimSpace(res.Status + " " + res.Diagnostic)
		detail = strings.TrimSpace(detail + fmt.Sprintf(" (message %s, matched by %s)", res.Message, res.Match))
		var err error
		if res.Kind == Complaint {
			err = in.Store.Complain(ctx, "email", res.Address, res.Message, detail)
		} else {
			err = in.Store.Suppress(ctx, "email", res.Address, string(res.Kind), detail)
		}
		if err != nil {
			return fmt.Errorf("%w: suppress %s: %v", ErrStore, res.Address, err)
		}
		in.Log.Info("address suppressed", "address", res.Address, "reason", res.Kind, "status", res.Status, "message", res.Message, "match", res.Match)
	case SoftBounce:
		in.Log.Info("soft bounce", "address", res.Address, "status", res.Status, "message", res.Message)
	}
	return nil
}

// UnsubscribeByMail applies unsubscribes that came by email: a message
// sent to the mailto: address in one of lojal's List-Unsubscribe fields
// (VERP.UnsubscribeAddress) unsubscribes that message's recipient exactly
// as the one-click link would. handled is false when no address in
// envelopeTo is such an address. One that verifies but names no email lojal
// sent, or one sent longer ago than links stay valid, changes nothing.
func (in *Intake) UnsubscribeByMail(ctx context.Context, envelopeTo []string) (handled bool, err error) {
	if in.VERP == nil {
		return false, nil
	}
	for _, to := range envelopeTo {
		id, ok := in.VERP.VerifyUnsubscribe(to)
		if !ok {
			continue
		}
		handled = true
		messageID := id + "@" + in.MessageDomain
		m, found, err := in.Store.MessageByID(ctx, messageID)
		if err != nil {
			return true, fmt.Errorf("%w: unsubscribe by email: %v", ErrStore, err)
		}
		if !found {
			in.Log.Warn("unsubscribe by email ignored: no email lojal sent has this Message-ID", "message", messageID)
			continue
		}
		if age := in.now().Sub(m.At); age > links.DefaultTTL {
			in.Log.Warn("unsubscribe by email ignored: the message is older than its links stay valid", "message", messageID, "age", age.Round(time.Hour))
			continue
		}
		var all []string
		if in.Topics != nil {
			all = in.Topics()
		}
		capture := store.Capture{Source: policy.SourceUnsubscribe, Actor: "customer", At: time.Now(),
			Evidence: "email to the List-Unsubscribe address of message " + messageID, MessageID: messageID}
		if err := in.Store.Unsubscribe(ctx, m.CustomerID, m.Topic, all, capture); errors.Is(err, store.ErrNotFound) {
			in.Log.Warn("unsubscribe by email ignored: the customer no longer exists", "message", messageID)
			continue
		} else if err != nil {
			return true, fmt.Errorf("%w: unsubscribe by email: %v", ErrStore, err)
		}
		in.Log.Info("unsubscribed by email", "customer", m.CustomerID, "topic", m.Topic, "message", messageID)
	}
	return handled, nil
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// readData reads one message from an SMTP DATA command.
func readData(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := io.Copy(&b, io.LimitReader(r, MaxSize))
	return b.Bytes(), err
}
