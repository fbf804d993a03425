package bounce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Suppressor records that nothing may be sent to an address again.
type Suppressor interface {
	Suppress(ctx context.Context, channel, address, reason, detail string) error
}

// ErrStore means a report was understood but could not be recorded; the
// sender should try again.
var ErrStore = errors.New("could not record report")

// Intake applies reports: hard bounces and complaints suppress the address;
// soft bounces are logged (the next send retries and may bounce hard).
type Intake struct {
	Store Suppressor
	Log   *slog.Logger
}

// Apply parses one report and acts on it. A message that is not a report
// returns ErrNotAReport and changes nothing.
func (in *Intake) Apply(ctx context.Context, r io.Reader) (Report, error) {
	rep, err := Parse(r)
	if err != nil {
		return rep, err
	}
	for _, rc := range rep.Recipients {
		switch rc.Kind {
		case HardBounce, Complaint:
			detail := rc.Status + " " + rc.Diagnostic
			if rep.MessageID != "" {
				detail += " (message " + rep.MessageID + ")"
			}
			if err := in.Store.Suppress(ctx, "email", rc.Address, string(rc.Kind), detail); err != nil {
				return rep, fmt.Errorf("%w: suppress %s: %v", ErrStore, rc.Address, err)
			}
			in.Log.Info("address suppressed", "address", rc.Address, "reason", rc.Kind, "status", rc.Status, "message_id", rep.MessageID)
		case SoftBounce:
			in.Log.Info("soft bounce", "address", rc.Address, "status", rc.Status, "message_id", rep.MessageID)
		}
	}
	return rep, nil
}

// ServeSMTP runs an inbound SMTP server on l that takes every message as a
// report: point the Return-Path mailbox (and feedback loops) at it. It
// returns when l is closed.
func (in *Intake) ServeSMTP(l net.Listener) error {
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &intakeSession{in: in}, nil }))
	s.Domain = "lojal-bounces"
	s.MaxMessageBytes = MaxSize
	s.MaxRecipients = 10
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	err := s.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type intakeSession struct{ in *Intake }

func (s *intakeSession) Reset()                               {}
func (s *intakeSession) Logout() error                        { return nil }
func (s *intakeSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *intakeSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *intakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize))
	if err != nil {
		return err
	}
	_, err = s.in.Apply(context.Background(), bytes.NewReader(b))
	switch {
	case errors.Is(err, ErrStore):
		// Understood but not recorded: the sender tries again later.
		s.in.Log.Warn("bounce intake", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	case err != nil && !errors.Is(err, ErrNotAReport):
		s.in.Log.Warn("unreadable report dropped", "err", err)
	}
	return nil // accepted; auto-replies and unreadable reports are dropped
}
