// Package mailcatch is a real SMTP server (github.com/emersion/go-smtp)
// that keeps what it receives, for `lojal dev`, tests and benchmarks. It can
// also misbehave on purpose, refusing or dropping connections and rejecting
// recipients, so fault tests can prove nothing is lost or sent twice.
package mailcatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one received message.
type Message struct {
	// User is who authenticated, when AUTH was required.
	User       string
	From       string
	To         []string
	Data       []byte
	Header     mail.Header
	ReceivedAt time.Time
}

// MessageID returns the Message-ID header without angle brackets.
func (m Message) MessageID() string {
	return strings.Trim(m.Header.Get("Message-Id"), "<>")
}

// Mode is how the server treats new connections.
type Mode int

// Modes for fault tests.
const (
	// Accept delivers normally.
	Accept Mode = iota
	// TempFail answers every transaction with 421 (service not available).
	TempFail
	// Drop closes connections right after accepting them.
	Drop
)

// Server is the catcher.
type Server struct {
	// Addr is host:port it listens on.
	Addr string

	srv  *smtp.Server
	ln   net.Listener
	dir  string
	log  *slog.Logger
	mu   sync.Mutex
	msgs []Message
	mode Mode
	// rejectRcpt returns a permanent failure for an address, to stand in
	// for a hard bounce at RCPT time.
	rejectRcpt func(addr string) bool
	notify     chan struct{}
	discard    bool
	discarded  int
	users      map[string]string
	sessions   int
	afterData  func(Message, int) Reply
	// attempts counts the times each Message-ID reached the final ".".
	attempts map[string]int
	// rate, when set, is how many transactions a second MAIL accepts;
	// nextMail is when the next may start, throttled counts refusals.
	rate      float64
	nextMail  time.Time
	throttled int
}

// Action is what the server does once it holds a whole message (the
// client has sent the final "." of DATA).
type Action int

// Actions for fault tests. Real servers do each of these: a content filter
// that takes its time, a load balancer that cuts the connection before the
// reply, a crash after queueing.
const (
	// Deliver keeps the message and answers 250.
	Deliver Action = iota
	// QueueAndDrop keeps the message and closes the connection without
	// answering: the client cannot know the server has it (RFC 1047).
	QueueAndDrop
	// QueueAndDelay keeps the message and answers 250 only after Delay.
	QueueAndDelay
	// Refuse does not keep the message and answers Code and Text.
	Refuse
)

// Reply says how to answer the final "." of one message.
type Reply struct {
	Action Action
	Delay  time.Duration
	Code   int
	Text   string
}

// SetAfterData installs f to decide how each message's final "." is
// answered; attempt counts how often that Message-ID has reached the
// final "." (1 the first time). nil restores normal delivery.
func (s *Server) SetAfterData(f func(m Message, attempt int) Reply) {
	s.mu.Lock()
	s.afterData = f
	s.mu.Unlock()
}

// Sessions counts SMTP sessions opened so far (connection reuse shows as
// few sessions for many messages).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Options configure the server.
type Options struct {
	// Addr to listen on; default a free loopback port.
	Addr string
	// Dir, when set, receives every message as an .eml file.
	Dir string
	// RejectRecipient, when set, makes RCPT TO fail with 550 for the
	// addresses it returns true for.
	RejectRecipient func(addr string) bool
	// Discard counts messages without keeping them (benchmarks).
	Discard bool
	// TLS enables STARTTLS with this configuration.
	TLS *tls.Config
	// Users, when set, requires AUTH PLAIN with one of these
	// user/password pairs before mail is accepted.
	Users map[string]string
	// AfterData, when set, decides how the final "." of each message is
	// answered (see SetAfterData).
	AfterData func(m Message, attempt int) Reply
	// Rate, when set, makes the server a relay with a sending limit: MAIL
	// is accepted at most Rate times a second (with bursts of up to a
	// second's worth) and answered "451 4.7.1 rate limit exceeded"
	// otherwise, as relays do.
	Rate float64
}

// Start listens and serves until Close.
func Start(log *slog.Logger, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailcatch: listen: %w", err)
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			ln.Close()
			return nil, fmt.Errorf("mailcatch: %w", err)
		}
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, dir: opts.Dir, log: log, rejectRcpt: opts.RejectRecipient,
		notify: make(chan struct{}), discard: opts.Discard, users: opts.Users, afterData: opts.AfterData, attempts: map[string]int{},
		rate: opts.Rate}
	srv := smtp.NewServer(s)
	srv.Domain = "mailcatch.local"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = opts.TLS
	s.srv = srv
	go func() {
		if err := srv.Serve(&modeListener{Listener: ln, s: s}); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			log.Error("mailcatch stopped", "err", err)
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetMode switches how new connections and transactions are treated.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

func (s *Server) currentMode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Messages returns a copy of everything received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count returns how many messages were received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs) + s.discarded
}

// Throttled counts transactions refused for going over Options.Rate.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Reset forgets received messages.
func (s *Server) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.mu.Unlock()
}

// WaitFor waits until at least n messages have arrived.
func (s *Server) WaitFor(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Messages(), fmt.Errorf("waiting for %d messages, have %d: %w", n, s.Count(), ctx.Err())
		}
	}
}

func (s *Server) store(m Message) error {
	s.mu.Lock()
	if s.discard {
		s.discarded++
		s.mu.Unlock()
		return nil
	}
	s.msgs = append(s.msgs, m)
	n := len(s.msgs)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	if s.dir != "" {
		name := filepath.Join(s.dir, fmt.Sprintf("%06d.eml", n))
		if err := os.WriteFile(name, m.Data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if s.currentMode() == TempFail {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, try later"}
	}
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &session{s: s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	from string
	to   []string
	user string
}

// AuthMechanisms implements smtp.AuthSession.
func (ss *session) AuthMechanisms() []string {
	if ss.s.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

// Auth implements smtp.AuthSession.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.users == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if want, ok := ss.s.users[username]; !ok || want != password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.users != nil && ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	if s := ss.s; s.rate > 0 {
		// A token bucket holding a second's worth, as relays allow
		// short bursts.
		s.mu.Lock()
		now := time.Now()
		interval := time.Duration(float64(time.Second) / s.rate)
		if earliest := now.Add(-time.Duration(max(s.rate, 1) * float64(interval))); s.nextMail.Before(earliest) {
			s.nextMail = earliest
		}
		if s.nextMail.After(now) {
			s.throttled++
			s.mu.Unlock()
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Rate limit exceeded, slow down"}
		}
		s.nextMail = s.nextMail.Add(interval)
		s.mu.Unlock()
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rejectRcpt != nil && ss.s.rejectRcpt(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user: " + to}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.discard {
		return ss.s.store(Message{})
	}
	if ss.s.currentMode() == TempFail {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, try later"}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message: " + err.Error()}
	}
	m := Message{User: ss.user, From: ss.from, To: ss.to, Data: data, Header: msg.Header, ReceivedAt: time.Now()}
	reply := ss.s.reply(m)
	if reply.Action == Refuse {
		return &smtp.SMTPError{Code: reply.Code, Message: reply.Text}
	}
	if err := ss.s.store(m); err != nil {
		return err
	}
	switch reply.Action {
	case QueueAndDrop:
		// The message is kept; the reply is never sent.
		_ = ss.conn.Conn().Close()
	case QueueAndDelay:
		time.Sleep(reply.Delay)
	}
	return nil
}

// reply asks the AfterData hook how to answer m's final ".".
func (s *Server) reply(m Message) Reply {
	s.mu.Lock()
	f := s.afterData
	s.attempts[m.MessageID()]++
	n := s.attempts[m.MessageID()]
	s.mu.Unlock()
	if f == nil {
		return Reply{}
	}
	return f(m, n)
}

// modeListener drops connections in Drop mode.
type modeListener struct {
	net.Listener
	s *Server
}

func (l *modeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.currentMode() == Drop {
			c.Close()
			continue
		}
		return c, nil
	}
}
