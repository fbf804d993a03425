package bounce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPOptions bound the inbound SMTP server. It faces the internet, so
// every limit is on by default.
type SMTPOptions struct {
	// MaxConns is how many connections are served at once (default 100).
	// One more is told 421 (try again later) and closed.
	MaxConns int
	// SessionTimeout bounds a whole connection, however busy it keeps
	// itself (default 5 minutes): a slow client cannot hold a slot for
	// ever by sending a byte now and then.
	SessionTimeout time.Duration
	// Timeout bounds each read and write (default 1 minute).
	Timeout time.Duration
}

func (o SMTPOptions) withDefaults() SMTPOptions {
	if o.MaxConns <= 0 {
		o.MaxConns = 100
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 5 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	return o
}

// ServeSMTP runs an inbound SMTP server on l that takes every message as a
// report: point the Return-Path domain's MX (and feedback loops) at it. A
// report that matches no message lojal sent is accepted and ignored, with
// a log line, so forgers learn nothing. It returns when l is closed.
func (in *Intake) ServeSMTP(l net.Listener, opts SMTPOptions) error {
	opts = opts.withDefaults()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &intakeSession{in: in}, nil }))
	s.Domain = "lojal-bounces"
	s.MaxMessageBytes = MaxSize
	s.MaxRecipients = MaxRecipients
	s.MaxLineLength = 2000
	s.ReadTimeout, s.WriteTimeout = opts.Timeout, opts.Timeout
	err := s.Serve(&limitListener{Listener: l, slots: make(chan struct{}, opts.MaxConns), session: opts.SessionTimeout, in: in})
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// limitListener serves at most cap(slots) connections at a time, each for
// at most session.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	session time.Duration
	in      *Intake
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.in.Log.Warn("bounce intake: connection refused, too many open", "remote", c.RemoteAddr().String(), "max", cap(l.slots))
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("421 4.7.0 lojal-bounces too many connections, try again later\r\n"))
			_ = c.Close()
			continue
		}
		lc := &limitedConn{Conn: c, release: func() { <-l.slots }}
		// The deadline for the whole session: closing the connection ends
		// whatever read or write it is in.
		lc.timer = time.AfterFunc(l.session, func() {
			l.in.Log.Warn("bounce intake: session deadline reached, closing", "remote", c.RemoteAddr().String())
			_ = lc.Close()
		})
		return lc, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
	timer   *time.Timer
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.release()
	})
	return err
}

type intakeSession struct {
	in   *Intake
	from string
	to   []string
	// size is what the client declared with MAIL FROM SIZE= (RFC 1870).
	size  int64
	reply bool
}

func (s *intakeSession) Reset()        { s.from, s.to, s.size, s.reply = "", nil, 0, false }
func (s *intakeSession) Logout() error { return nil }

func (s *intakeSession) Mail(from string, opts *smtp.MailOptions) error {
	s.from = from
	if opts != nil {
		s.size = opts.Size
	}
	return nil
}

func (s *intakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.in.Replies != nil && s.in.VERP != nil && s.in.VERP.IsReplyAddress(to) {
		if s.size > MaxReplySize {
			return errReplyTooLarge
		}
		s.reply = true
	}
	s.to = append(s.to, to)
	return nil
}

var errReplyTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
	Message: fmt.Sprintf("Reply too large: lojal takes replies of up to %d KiB; write a shorter reply", MaxReplySize>>10)}

// dataReply takes a message to a reply address: refused when too large or
// malformed, 451 when it could not be recorded, otherwise accepted.
func (s *intakeSession) dataReply(r io.Reader) error {
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(r, MaxReplySize+1))
	if err != nil {
		return err
	}
	if n > MaxReplySize {
		_, _ = io.Copy(io.Discard, r)
		return errReplyTooLarge
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = s.in.Replies.TakeReply(ctx, s.from, s.to, b.Bytes())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrReplyMalformed):
		s.in.Log.Warn("reply refused", "mail_from", s.from, "rcpt_to", s.to, "err", err)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed reply: " + oneLine(err.Error())}
	default:
		s.in.Log.Warn("reply not recorded; the sender will try again", "mail_from", s.from, "rcpt_to", s.to, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
}

// oneLine keeps an SMTP reply text on one line and short.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (s *intakeSession) Data(r io.Reader) error {
	if s.reply {
		return s.dataReply(r)
	}
	b, err := readData(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := s.in.Log.With("mail_from", s.from, "rcpt_to", s.to)
	// Mail to a List-Unsubscribe address is an unsubscribe, whatever it
	// says; everything else is taken for a report.
	if handled, err := s.in.UnsubscribeByMail(ctx, s.to); err != nil {
		log.Warn("bounce intake", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	} else if handled {
		return nil
	}
	_, err = s.in.Apply(ctx, bytes.NewReader(b), s.to...)
	switch {
	case err == nil:
	case errors.Is(err, ErrStore):
		// Understood but not recorded: the sender tries again later.
		log.Warn("bounce intake", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	case errors.Is(err, ErrNotAReport):
		log.Info("bounce intake: not a report (an auto-reply?), dropped")
	default:
		// Accepted and ignored: answering differently would tell a forger
		// which addresses lojal writes to.
		log.Warn("bounce intake: report ignored", "err", err)
	}
	return nil
}
