package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
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
	DKIM *gomail.DKIMSigner
	// ReturnPath is the envelope sender (MAIL FROM) that bounces go to:
	// the mailbox lojal's bounce intake reads. Default: the From address.
	ReturnPath string
}

// Email sends over SMTP, reusing connections.
type Email struct {
	client     *gomail.Client
	from       *mail.Address
	returnPath string
	domain     string
	maxIdle    int
	maxAge     time.Duration
	log        *slog.Logger

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
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithHELO(domain),
		// The pool checks connection age itself; NOOP and RSET on every
		// message would double the round trips.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
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
	if cfg.DKIM != nil {
		opts = append(opts, gomail.WithAlwaysDKIMSign(cfg.DKIM))
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
	return &Email{client: client, from: from, returnPath: cfg.ReturnPath, domain: domain, maxIdle: maxIdle, maxAge: time.Minute, log: log}, nil
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
	m.FromMailAddress(e.from)
	if e.returnPath != "" {
		if err := m.EnvelopeFrom(e.returnPath); err != nil {
			return nil, err
		}
	}
	if err := m.AddToFormat(env.ToName, env.To); err != nil {
		return nil, &PermanentError{Bounce: true, Err: fmt.Errorf("recipient %q: %w", env.To, err)}
	}
	m.Subject(env.Message.Subject)
	m.SetMessageIDWithValue(env.MessageID)
	m.SetDate()
	m.SetUserAgent("lojal")
	m.SetGenHeader("X-Lojal-Key", env.IdempotencyKey)
	m.SetGenHeader(gomail.HeaderContentLang, env.Message.Locale)
	m.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	if env.Unsubscribe != "" {
		// RFC 8058: a one-click POST to the https link unsubscribes.
		m.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+env.Unsubscribe+">")
		m.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	m.SetBodyString(gomail.TypeTextPlain, env.Message.Text)
	if env.Message.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, env.Message.HTML)
	}
	return m, nil
}

// Send implements Sender. A connection that fails before the message data
// was accepted is replaced and the send tried once more on a fresh one;
// after that, errors go back to the caller (Temporal retries temporary ones
// with the same Message-ID).
func (e *Email) Send(ctx context.Context, env Envelope) (Receipt, error) {
	m, err := e.Build(env)
	if err != nil {
		return Receipt{}, err
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := e.get(ctx)
		if err != nil {
			return Receipt{}, fmt.Errorf("smtp connect: %w", err)
		}
		err = e.client.SendWithSMTPClient(c, m)
		if err == nil {
			e.put(c)
			return Receipt{Delivered: 1}, nil
		}
		_ = c.Close()
		var se *gomail.SendError
		if errors.As(err, &se) {
			if reused && attempt == 0 && beforeData(se) && !smtpReplied(se) {
				continue // the pooled connection had gone stale
			}
			if !se.IsTemp() && se.ErrorCode() >= 500 {
				return Receipt{}, &PermanentError{Code: se.ErrorCode(), Bounce: se.Reason == gomail.ErrSMTPRcptTo, Err: err}
			}
		}
		return Receipt{}, fmt.Errorf("smtp send: %w", err)
	}
}

// beforeData reports whether the error happened before the server could
// have accepted the message.
func beforeData(se *gomail.SendError) bool {
	switch se.Reason {
	case gomail.ErrConnCheck, gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData:
		return true
	}
	return false
}

// smtpReplied reports whether the server answered with an SMTP status
// (as opposed to the connection breaking).
func smtpReplied(se *gomail.SendError) bool {
	var ne net.Error
	if errors.As(se, &ne) {
		return false
	}
	return se.ErrorCode() > 0
}

// LoadDKIM reads a PEM private key (RSA or Ed25519) and returns a signer
// for domain and selector.
func LoadDKIM(domain, selector string, pemBytes []byte) (*gomail.DKIMSigner, error) {
	key, err := gomail.PrivKeyFromPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	return gomail.NewDKIMSigner(domain, selector, key), nil
}
