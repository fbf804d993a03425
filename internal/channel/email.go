package channel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// EmailConfig configures SMTP delivery.
type EmailConfig struct {
	// URL is smtp://[user:pass@]host:port with ?tls=starttls (default when
	// auth is set), tls (implicit TLS, also smtps://) or none.
	URL string
	// From is the sender, "Name <address>".
	From string
	// MaxIdle bounds pooled connections kept open between sends.
	MaxIdle int
	// Timeout bounds each SMTP conversation.
	Timeout time.Duration
	// InsecureSkipVerify accepts any server certificate (local testing).
	InsecureSkipVerify bool
	// DKIM signs every message when set.
	DKIM *DKIM
	// ReturnPath is the envelope sender (MAIL FROM) that bounces go to:
	// the mailbox lojal's bounce intake reads. Default: the From address.
	ReturnPath string
}

// Email sends over SMTP, reusing connections.
type Email struct {
	client     *gomail.Client
	from       *mail.Address
	returnPath string
	timeout    time.Duration
	dkim       *DKIM
	domain     string
	maxIdle    int
	maxAge     time.Duration
	log        *slog.Logger
	// pace slows sending after the relay asked it to (throttle.go).
	pace *pace

	mu   sync.Mutex
	idle []pooled
}

type pooled struct {
	c     *smtp.Client
	since time.Time
}

// NewEmail parses the configuration. It does not connect.
func NewEmail(cfg EmailConfig, log *slog.Logger) (*Email, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("from address %q: %w", cfg.From, err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	host := u.Hostname()
	port := 25
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("smtp url port %q: %w", p, err)
		}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithHELO(domain),
		// The pool checks connection age itself; NOOP on every message
		// would add a round trip.
		gomail.WithoutNoop(),
	}
	mode := u.Query().Get("tls")
	if u.Scheme == "smtps" {
		mode = "tls"
	}
	if mode == "" {
		mode = "none"
		if u.User != nil {
			mode = "starttls"
		}
	}
	switch mode {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	default:
		return nil, fmt.Errorf("smtp url: tls=%q, want starttls, tls or none", mode)
	}
	if cfg.InsecureSkipVerify {
		opts = append(opts, gomail.WithTLSConfig(&tls.Config{ServerName: host, InsecureSkipVerify: true})) //nolint:gosec // opt-in for local servers
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	maxIdle := cfg.MaxIdle
	if maxIdle <= 0 {
		maxIdle = 8
	}
	if cfg.ReturnPath != "" {
		if _, err := mail.ParseAddress(cfg.ReturnPath); err != nil {
			return nil, fmt.Errorf("return path %q: %w", cfg.ReturnPath, err)
		}
	}
	return &Email{client: client, from: from, returnPath: cfg.ReturnPath, domain: domain, maxIdle: maxIdle, maxAge: time.Minute,
		timeout: timeout, dkim: cfg.DKIM, log: log, pace: newPace(nil)}, nil
}

// Domain is the sender's domain, used in Message-IDs.
func (e *Email) Domain() string { return e.domain }

// Close closes pooled connections.
func (e *Email) Close() {
	e.mu.Lock()
	idle := e.idle
	e.idle = nil
	e.mu.Unlock()
	for _, p := range idle {
		_ = p.c.Quit()
	}
}

func (e *Email) get(ctx context.Context) (*smtp.Client, bool, error) {
	e.mu.Lock()
	for len(e.idle) > 0 {
		p := e.idle[len(e.idle)-1]
		e.idle = e.idle[:len(e.idle)-1]
		if time.Since(p.since) < e.maxAge {
			e.mu.Unlock()
			return p.c, true, nil
		}
		go p.c.Close() //nolint:errcheck // stale connection
	}
	e.mu.Unlock()
	c, err := e.client.DialToSMTPClientWithContext(ctx)
	return c, false, err
}

func (e *Email) put(c *smtp.Client) {
	e.mu.Lock()
	if len(e.idle) < e.maxIdle {
		e.idle = append(e.idle, pooled{c: c, since: time.Now()})
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	_ = c.Quit()
}

// Build composes the MIME message for an envelope (exported for previews).
func (e *Email) Build(env Envelope) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithEncoding(gomail.EncodingQP), gomail.WithCharset(gomail.CharsetUTF8))
	from := e.from
	if env.FromName != "" {
		// mail.Address quotes and encodes the name; a line break in it
		// cannot start a header of its own.
		from = &mail.Address{Name: strings.Join(strings.Fields(env.FromName), " "), Address: e.from.Address}
	}
	m.FromMailAddress(from)
	if env.ReplyTo != "" {
		rt, err := mail.ParseAddress(env.ReplyTo)
		if err != nil {
			return nil, &PermanentError{Err: fmt.Errorf("reply address %q: %w", env.ReplyTo, err)}
		}
		if env.FromName != "" {
			rt.Name = from.Name
		}
		m.ReplyToMailAddress(rt)
	}
	returnPath := e.returnPath
	if env.ReturnPath != "" {
		returnPath = env.ReturnPath
	}
	if returnPath != "" {
		if err := m.EnvelopeFrom(returnPath); err != nil {
			return nil, &PermanentError{Err: fmt.Errorf("return path %q: %w", returnPath, err)}
		}
	}
	// A message lojal cannot build is this message's failure; it says
	// nothing about the mailbox, so it is never a bounce.
	to, err := mail.ParseAddress(env.To)
	if err != nil || to.Address != env.To {
		return nil, &PermanentError{Err: fmt.Errorf("recipient %q is not an address: %v", env.To, err)}
	}
	// mail.Address quotes and encodes the name itself; formatting it into
	// a string first would fail on a quote or line break in it.
	m.AddToMailAddress(&mail.Address{Name: env.ToName, Address: to.Address})
	m.Subject(env.Message.Subject)
	m.SetMessageIDWithValue(env.MessageID)
	m.SetDate()
	m.SetUserAgent("lojal")
	m.SetGenHeader("X-Lojal-Key", env.IdempotencyKey)
	m.SetGenHeader(gomail.HeaderContentLang, env.Message.Locale)
	m.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	if env.Unsubscribe != "" {
		// RFC 8058: a one-click POST to the https link unsubscribes. The
		// mailto: address does the same for clients that only mail.
		unsub := "<" + env.Unsubscribe + ">"
		if env.UnsubscribeMail != "" {
			unsub += ", <mailto:" + env.UnsubscribeMail + "?subject=unsubscribe>"
		}
		m.SetGenHeader(gomail.HeaderListUnsubscribe, unsub)
		m.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	m.SetBodyString(gomail.TypeTextPlain, env.Message.Text)
	if env.Message.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, env.Message.HTML)
	}
	return m, nil
}

// encode writes the message as it goes on the wire, DKIM-signed when a
// key is configured.
func (e *Email) encode(m *gomail.Msg) ([]byte, error) {
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		return nil, err
	}
	if e.dkim == nil {
		return b.Bytes(), nil
	}
	return e.dkim.Sign(b.Bytes())
}

// send sends env over SMTP; Send traces it (trace.go).
//
// The conversation is driven step by step so that env.Confirm, the commit
// point, runs when the server holds the whole message but has not yet been
// told to deliver it (the final "."). What each outcome proves:
//
//   - an error before Confirm: nothing was handed over; a retry may send;
//   - Confirm or HandOver fails: the connection is dropped before the "."
//     and the server discards the message;
//   - 250 to the ".": delivered;
//   - 4xx or 5xx to the ".": refused (a temporary or a permanent error);
//   - no answer to the "." (the connection breaks, the server is slower
//     than our timeout): an UncertainError, for the server may have it.
//
// A 4xx that asks lojal to slow down (throttle.go) is a ThrottledError,
// and paces this process's later sends. A pooled connection that turns
// out dead before any reply is replaced and the send tried once more on a
// fresh one.
func (e *Email) send(ctx context.Context, env Envelope) (Receipt, error) {
	m, err := e.Build(env)
	if err != nil {
		return Receipt{}, err
	}
	from, err := m.GetSender(false)
	if err != nil {
		return Receipt{}, &PermanentError{Err: err}
	}
	rcpts, err := m.GetRecipients()
	if err != nil {
		return Receipt{}, &PermanentError{Err: err}
	}
	raw, err := e.encode(m)
	if err != nil {
		return Receipt{}, &PermanentError{Err: fmt.Errorf("encode message: %w", err)}
	}
	for attempt := 0; ; attempt++ {
		if err := e.pace.wait(ctx); err != nil {
			return Receipt{}, err
		}
		c, reused, err := e.get(ctx)
		if err != nil {
			var reply *textproto.Error
			if errors.As(err, &reply) && throttling(reply) {
				e.pace.throttled()
				return Receipt{}, &ThrottledError{Err: fmt.Errorf("smtp connect: %w", err)}
			}
			return Receipt{}, fmt.Errorf("smtp connect: %w", err)
		}
		st, err := e.transact(c, raw, from, rcpts, env.Confirm, env.HandOver)
		if err == nil {
			e.put(c)
			return Receipt{Delivered: 1}, nil
		}
		_ = c.Close()
		var reply *textproto.Error
		replied := errors.As(err, &reply)
		switch {
		case st == stageConfirm:
			return Receipt{}, fmt.Errorf("not sent: %w", err)
		case st == stageFinal && !replied:
			return Receipt{}, &UncertainError{Err: fmt.Errorf("no reply after the end of data: %w", err)}
		case reused && attempt == 0 && st == stageMail && !replied:
			continue // the pooled connection had gone stale
		case replied && reply.Code >= 500:
			return Receipt{}, &PermanentError{Code: reply.Code, Bounce: st == stageRcpt, Err: fmt.Errorf("smtp %s: %w", st, err)}
		case replied && throttling(reply):
			// The relay wants fewer messages: this one waits, and so,
			// for a while, does everything this process sends.
			e.pace.throttled()
			return Receipt{}, &ThrottledError{Err: fmt.Errorf("smtp %s: %w", st, err)}
		}
		return Receipt{}, fmt.Errorf("smtp %s: %w", st, err)
	}
}

type stage string

const (
	stageMail    stage = "MAIL"
	stageRcpt    stage = "RCPT"
	stageData    stage = "DATA"
	stageConfirm stage = "confirm"
	stageFinal   stage = "end of data"
)

func (e *Email) transact(c *smtp.Client, raw []byte, from string, rcpts []string, confirm func() error, handOver func() (func() error, error)) (stage, error) {
	if err := c.UpdateDeadline(e.timeout); err != nil {
		return stageMail, err
	}
	var w io.WriteCloser
	if ok, _ := c.Extension("PIPELINING"); ok {
		if st, err := e.pipelineEnvelope(c, from, rcpts); err != nil {
			return st, err
		}
		w = &dataWriter{c: c, WriteCloser: c.Text.DotWriter()}
	} else {
		if err := c.Mail(from); err != nil {
			return stageMail, err
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r); err != nil {
				return stageRcpt, err
			}
		}
		var err error
		if w, err = c.Data(); err != nil {
			return stageData, err
		}
	}
	if _, err := w.Write(raw); err != nil {
		return stageData, err
	}
	if confirm != nil {
		if err := confirm(); err != nil {
			return stageConfirm, err
		}
	}
	// From the commit point on, the ledger says the server may have the
	// message, so the final "." must go out whenever this goroutine gets
	// to write it: a process stopped (SIGSTOP, a long GC or VM pause)
	// after confirming would otherwise find the whole-transaction deadline
	// gone, fail to write the "." and leave a message recorded as possibly
	// delivered that the server never got. The "." and its answer get a
	// deadline of their own.
	if err := c.UpdateDeadline(e.timeout); err != nil {
		return stageConfirm, err
	}
	var wait func() error
	if handOver != nil {
		var err error
		if wait, err = handOver(); err != nil {
			return stageConfirm, err
		}
	}
	err := w.Close()
	if wait != nil {
		// The caller writes the message's final state after this, fenced
		// by its attempt, so a record that did not make it is made good
		// there; say so, but do not change what the server's answer was.
		if werr := wait(); werr != nil {
			e.log.Warn("hand-over record not confirmed; it is written again with the final state", "err", werr)
		}
	}
	if err != nil {
		return stageFinal, err
	}
	return "", nil
}

// pipelineEnvelope sends MAIL, every RCPT and DATA in one write and then
// reads their replies in order (RFC 2920), so a message costs two round
// trips instead of three plus one per recipient. Any refusal ends the
// transaction; the caller drops the connection, so the server's state
// after a partial failure does not matter.
func (e *Email) pipelineEnvelope(c *smtp.Client, from string, rcpts []string) (stage, error) {
	for _, a := range append([]string{from}, rcpts...) {
		if strings.ContainsAny(a, "\r\n") {
			return stageMail, &PermanentError{Err: fmt.Errorf("address %q contains a line break", a)}
		}
	}
	params := ""
	if ok, _ := c.Extension("8BITMIME"); ok {
		params += " BODY=8BITMIME"
	}
	if ok, _ := c.Extension("SMTPUTF8"); ok {
		params += " SMTPUTF8"
	}
	bw := c.Text.W
	fmt.Fprintf(bw, "MAIL FROM:%s%s\r\n", from, params)
	for _, r := range rcpts {
		fmt.Fprintf(bw, "RCPT TO:%s\r\n", r)
	}
	bw.WriteString("DATA\r\n")
	if err := bw.Flush(); err != nil {
		return stageMail, err
	}
	if _, _, err := c.Text.ReadResponse(250); err != nil {
		return stageMail, err
	}
	for range rcpts {
		if _, _, err := c.Text.ReadResponse(25); err != nil {
			return stageRcpt, err
		}
	}
	if _, _, err := c.Text.ReadResponse(354); err != nil {
		return stageData, err
	}
	return "", nil
}

// dataWriter ends DATA on a pipelined transaction: the final "." and the
// server's answer to it.
type dataWriter struct {
	c *smtp.Client
	io.WriteCloser
}

func (d *dataWriter) Close() error {
	if err := d.WriteCloser.Close(); err != nil {
		return err
	}
	_, _, err := d.c.Text.ReadResponse(250)
	return err
}
