package channel

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// PushSubscription is one device or browser a customer receives push on.
type PushSubscription struct {
	ID int64 `json:"id"`
	// Kind is webpush (a browser's Push API subscription) or http (a
	// device token for the configured HTTP push provider).
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// Subscription kinds.
const (
	KindWebPush = "webpush"
	KindHTTP    = "http"
)

// PushConfig configures push delivery.
type PushConfig struct {
	// VAPID keys (RFC 8292), base64url; Subject is a mailto: or https: URL
	// push services can contact.
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	Subject         string
	// ProviderURL and ProviderToken configure the plain HTTP push provider
	// adapter: lojal POSTs JSON to ProviderURL with a bearer token.
	ProviderURL   string
	ProviderToken string
	// TTL is how long a push service may hold a message for an offline
	// device.
	TTL time.Duration
	// Egress vets where Web Push subscriptions may send the worker.
	Egress Egress
	// Client, when set, replaces the client NewPush builds from Egress.
	Client *http.Client
}

// Push delivers to Web Push subscriptions and to an HTTP push provider.
type Push struct {
	cfg PushConfig
	log *slog.Logger
}

// NewPush returns a push sender.
func NewPush(cfg PushConfig, log *slog.Logger) *Push {
	if cfg.Client == nil {
		// The provider URL is the operator's, not a customer's: trusted.
		cfg.Client = cfg.Egress.Client(15*time.Second, hostOf(cfg.ProviderURL))
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	return &Push{cfg: cfg, log: log}
}

// ErrNoLiveSubscription means every subscription was gone: the customer
// cannot be reached by push and the caller should fall back to email.
var ErrNoLiveSubscription = errors.New("no live push subscription")

// Payload is what a device receives.
type Payload struct {
	Title     string `json:"title"`
	Body      string `json:"body"`
	URL       string `json:"url,omitempty"`
	MessageID string `json:"message_id"`
	Locale    string `json:"locale,omitempty"`
}

// MaxPushPayload is the most JSON one push message carries: what one
// aes128gcm record of 4,096 bytes holds once its header, padding delimiter
// and tag are taken off (RFC 8291 section 4). The HTTP provider is held to
// the same, so a template behaves alike on every kind of subscription.
const MaxPushPayload = 3993

// encodePayload is the JSON a device receives. HTML characters are not
// escaped: the payload is read by a service worker, not put in a page, and
// every byte counts against MaxPushPayload.
func encodePayload(p Payload) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ErrPayloadTooLarge means a push message cannot be made to fit, even
// without its title and body: its URL (or locale) is too long.
var ErrPayloadTooLarge = errors.New("push payload too large")

// FitPayload returns p cut to fit MaxPushPayload by the rule
// docs/delivery.md sets out: the body is shortened first, at a character
// boundary, ending in "…", keeping as much as fits; if no body fits, it is
// left out and the title is shortened the same way. The URL, the
// Message-ID and the locale are never cut (a cut URL is a broken link):
// when they alone do not fit, FitPayload returns ErrPayloadTooLarge.
func FitPayload(p Payload) (Payload, error) {
	fits := func(q Payload) bool {
		b, err := encodePayload(q)
		return err == nil && len(b) <= MaxPushPayload
	}
	if fits(p) {
		return p, nil
	}
	if q, ok := cut(p, func(q *Payload) *string { return &q.Body }, fits); ok {
		return q, nil
	}
	p.Body = ""
	if q, ok := cut(p, func(q *Payload) *string { return &q.Title }, fits); ok {
		return q, nil
	}
	p.Title = ""
	if fits(p) {
		return p, nil
	}
	b, _ := encodePayload(p)
	return Payload{}, fmt.Errorf("%w: %d bytes without title or body, the limit is %d (the URL or locale is too long)", ErrPayloadTooLarge, len(b), MaxPushPayload)
}

// cut finds the longest prefix of the field that, followed by "…", lets p
// fit. It reports false when not even "…" alone fits.
func cut(p Payload, field func(*Payload) *string, fits func(Payload) bool) (Payload, bool) {
	full := []rune(*field(&p))
	try := func(n int) Payload {
		q := p
		*field(&q) = strings.TrimRightFunc(string(full[:n]), unicode.IsSpace) + "…"
		return q
	}
	if !fits(try(0)) {
		return p, false
	}
	lo, hi := 0, len(full) // fits(try(lo)) holds; the longest fitting prefix is in [lo, hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(try(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return try(lo), true
}

// providerRequest is the body the HTTP provider adapter sends.
type providerRequest struct {
	To string `json:"to"`
	Payload
}

// Push outcome states, one per subscription and message.
const (
	// PushSent: the push service accepted the message (2xx).
	PushSent = "sent"
	// PushGone: the subscription no longer exists (404, 410).
	PushGone = "gone"
	// PushFailed: refused for good (400, 401, 403, 413, a bad key).
	PushFailed = "failed"
	// PushRetry: failed temporarily (429, 5xx, no connection); nothing
	// was handed over, or the service said it did not take it.
	PushRetry = "retry"
	// PushUncertain: the request went out in full and no answer came
	// back; the service may have the message.
	PushUncertain = "uncertain"
)

// PushOutcome is what happened to one subscription's request.
type PushOutcome struct {
	State string
	// Status is the HTTP status, when there was an answer.
	Status int
	Err    error
	// RetryAfter is how long the service asked us to wait (429, 503).
	RetryAfter time.Duration
}

// SubscriptionSender sends a push message to one subscription. The send
// activity drives it one subscription at a time, so that it can record
// before each request that the service may get the message, and after it
// what the service said, and retry only the subscriptions that failed.
type SubscriptionSender interface {
	SendTo(ctx context.Context, env Envelope, sub PushSubscription) PushOutcome
}

// Send implements Sender for callers that need no per-subscription
// bookkeeping: it sends to every subscription and sums up. It reports
// subscriptions the push service says are gone in Receipt.Expired. When
// none is left it returns ErrNoLiveSubscription; when some failed
// temporarily it returns a temporary error, even if others took the
// message.
func (p *Push) Send(ctx context.Context, env Envelope) (Receipt, error) {
	var rc Receipt
	if len(env.Push) == 0 {
		return rc, ErrNoLiveSubscription
	}
	var temp, perm []error
	for _, s := range env.Push {
		out := p.SendTo(ctx, env, s)
		switch out.State {
		case PushSent:
			rc.Delivered++
		case PushGone:
			rc.Expired = append(rc.Expired, s)
		case PushRetry:
			temp = append(temp, out.Err)
		case PushUncertain:
			temp = append(temp, &UncertainError{Err: out.Err})
		default:
			perm = append(perm, out.Err)
		}
	}
	switch {
	case len(temp) > 0:
		return rc, fmt.Errorf("push: %w", errors.Join(temp...))
	case rc.Delivered > 0:
		return rc, nil
	case len(rc.Expired) == len(env.Push):
		return rc, ErrNoLiveSubscription
	}
	return rc, &PermanentError{Err: fmt.Errorf("every push subscription refused the message: %w", errors.Join(perm...))}
}

// sendTo sends to one subscription; SendTo traces it (trace.go). The
// message carries the same
// Topic (Web Push) or Idempotency-Key (HTTP provider) on every attempt, so
// a service that still holds an earlier copy replaces it.
//
// What cannot succeed however often it is tried fails at once, before any
// request: a payload over MaxPushPayload (the send path fits it first, with
// FitPayload), or a Web Push subscription whose keys are not keys.
func (p *Push) sendTo(ctx context.Context, env Envelope, s PushSubscription) PushOutcome {
	payload := Payload{Title: env.Message.Title, Body: env.Message.Body, URL: env.Message.URL, MessageID: env.MessageID, Locale: env.Message.Locale}
	body, err := encodePayload(payload)
	if err != nil {
		return PushOutcome{State: PushFailed, Err: err}
	}
	if len(body) > MaxPushPayload {
		return PushOutcome{State: PushFailed, Err: fmt.Errorf("%w: %d bytes of JSON, the limit is %d (RFC 8291)", ErrPayloadTooLarge, len(body), MaxPushPayload)}
	}
	if s.Kind == KindWebPush {
		if err := checkKeys(s); err != nil {
			return PushOutcome{State: PushFailed, Err: fmt.Errorf("push to %s: %w", host(s.Endpoint), err)}
		}
	}
	// Whether the request went out in full decides what a missing answer
	// means: nothing handed over (retry) or maybe delivered (uncertain).
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}})
	rec := recordFrom(ctx)
	resp, err := p.request(ctx, s, env.MessageID, body, payload, rec)
	// The transport may read the body after it returned (an HTTP/2
	// stream whose connection died after its headers went). The record
	// is made by now or never, so that it cannot land after the caller
	// wrote the answer.
	if rerr := rec.seal(); rerr != nil {
		// The body was not written: the service has a request cut short,
		// which it cannot act on. An answer it gave to the headers alone
		// (HTTP/1.1 sends them ahead of the body; a 401 or 404 may come
		// back before the record failed) is not an answer to this
		// message: the caller learns why the request did not leave.
		if resp != nil {
			resp.Body.Close()
		}
		return PushOutcome{State: PushRetry, Err: fmt.Errorf("push to %s not sent: recording the request failed: %w", host(s.Endpoint), rerr)}
	}
	if err != nil {
		if _, ok := IsPermanent(err); ok {
			return PushOutcome{State: PushFailed, Err: err}
		}
		err = fmt.Errorf("push to %s: %w", host(s.Endpoint), err)
		if wrote.Load() {
			return PushOutcome{State: PushUncertain, Err: fmt.Errorf("no answer after the request was sent: %w", err)}
		}
		return PushOutcome{State: PushRetry, Err: err}
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	out := PushOutcome{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	code := resp.StatusCode
	why := fmt.Errorf("push to %s: HTTP %d %s", host(s.Endpoint), code, strings.TrimSpace(string(detail)))
	switch {
	case code >= 200 && code < 300:
		out.State = PushSent
	case code == http.StatusNotFound || code == http.StatusGone:
		out.State, out.Err = PushGone, why
	case code == http.StatusTooManyRequests || code >= 500:
		out.State, out.Err = PushRetry, why
	default:
		// 400, 401, 403, 413: this subscription will not take the message;
		// keep it (it may be a configuration problem) but do not retry.
		out.State, out.Err = PushFailed, why
		p.log.Warn("push refused", "endpoint", host(s.Endpoint), "status", code)
	}
	return out
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IdempotencyKey is the key the HTTP provider gets for one message to one
// subscription: the same on every attempt, different per subscription.
func IdempotencyKey(messageID string, sub int64) string {
	return messageID + "/" + strconv.FormatInt(sub, 10)
}

func (p *Push) request(ctx context.Context, s PushSubscription, messageID string, body []byte, payload Payload, rec *requestRecord) (*http.Response, error) {
	switch s.Kind {
	case KindWebPush:
		if p.cfg.VAPIDPrivateKey == "" {
			return nil, &PermanentError{Err: errors.New("web push is not configured (no VAPID keys)")}
		}
		client := &trackingClient{c: p.cfg.Client, rec: rec}
		resp, err := webpush.SendNotificationWithContext(ctx, body, &webpush.Subscription{Endpoint: canonicalEndpoint(s.Endpoint),
			Keys: webpush.Keys{P256dh: s.P256dh, Auth: s.Auth}}, &webpush.Options{
			HTTPClient: client,
			// The library puts "mailto:" in front of any subscriber that
			// is not https:, so a configured mailto: goes in without it.
			Subscriber:      strings.TrimPrefix(p.cfg.Subject, "mailto:"),
			VAPIDPublicKey:  p.cfg.VAPIDPublicKey,
			VAPIDPrivateKey: p.cfg.VAPIDPrivateKey,
			TTL:             int(p.cfg.TTL.Seconds()),
			// A retried send replaces, rather than repeats, a message the
			// push service still holds.
			Topic:   topic(messageID),
			Urgency: webpush.UrgencyNormal,
		})
		if err != nil && !client.called {
			// It failed before any request: encryption or the token, which
			// no retry changes.
			return nil, &PermanentError{Err: fmt.Errorf("web push request: %w", err)}
		}
		return resp, err
	case KindHTTP:
		if p.cfg.ProviderURL == "" {
			return nil, &PermanentError{Err: errors.New("HTTP push provider is not configured")}
		}
		b, err := json.Marshal(providerRequest{To: s.Endpoint, Payload: payload})
		if err != nil {
			return nil, &PermanentError{Err: err}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.ProviderURL, bytes.NewReader(b))
		if err != nil {
			return nil, &PermanentError{Err: err}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", IdempotencyKey(messageID, s.ID))
		if p.cfg.ProviderToken != "" {
			req.Header.Set("Authorization", "Bearer "+p.cfg.ProviderToken)
		}
		rec.onBody(req)
		return p.cfg.Client.Do(req)
	}
	return nil, &PermanentError{Err: fmt.Errorf("unknown push subscription kind %q", s.Kind)}
}

// trackingClient tells whether the push library got as far as a request,
// and has the request recorded as its body is written.
type trackingClient struct {
	c      *http.Client
	rec    *requestRecord
	called bool
}

func (t *trackingClient) Do(r *http.Request) (*http.Response, error) {
	t.called = true
	t.rec.onBody(r)
	return t.c.Do(r)
}

// WithRequestRecord returns a context under which a push send calls record
// when its request is about to leave: the connection to the service is
// made, the message encrypted and signed, the headers sent, and the body
// is about to be written. A
// send stopped before that point (the worker
// killed while it connected, say) made no request the service could act
// on, and left no record that would make the next attempt call it
// uncertain: the next attempt sends it.
//
// record sends the record on its way and returns without waiting for it
// to be stored, and the body is written right behind it, so that a worker
// killed at any moment has handed over both or neither. Between the two
// writes HTTP/1.1 copies the body into its buffer; HTTP/2 may also wait
// for the stream's flow-control credit and the connection's write lock
// (docs/delivery.md, What remains). If record fails, the body
// is not written and the send is retried; the service has a request cut
// short, which it cannot act on. The send calls wait, record's answer,
// once it has its own answer or error and before it returns: the record
// is stored, or has failed, before the caller writes the answer. After
// that, record is never called.
func WithRequestRecord(ctx context.Context, record func() (wait func(), err error)) context.Context {
	return context.WithValue(ctx, recordKey{}, record)
}

type recordKey struct{}

// requestRecord runs a send's record once, however often its body is
// read (the transport replays a body on a new connection).
type requestRecord struct {
	record func() (func(), error)
	mu     sync.Mutex
	done   bool
	wait   func()
	err    error
}

func recordFrom(ctx context.Context) *requestRecord {
	if f, ok := ctx.Value(recordKey{}).(func() (func(), error)); ok {
		return &requestRecord{record: f}
	}
	return nil
}

func (r *requestRecord) run() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.done = true
		r.wait, r.err = r.record()
	}
	return r.err
}

// errSealed fails a body read after the send had its answer.
var errSealed = errors.New("push: the request already has its answer; its body is not sent now")

// seal ends the time in which the record may be made, waiting for one
// under way and for its answer: a body read later records nothing and
// fails. It returns the record's error if the record failed, and with it
// the body was not written.
func (r *requestRecord) seal() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.done, r.err = true, errSealed
		return nil
	}
	if r.wait != nil {
		r.wait()
		r.wait = nil
	}
	if errors.Is(r.err, errSealed) {
		return nil
	}
	return r.err
}

// onBody has the record made on the first read of req's body.
func (r *requestRecord) onBody(req *http.Request) {
	if r == nil || req.Body == nil {
		return
	}
	req.Body = recordedBody{ReadCloser: req.Body, rec: r}
	if get := req.GetBody; get != nil {
		req.GetBody = func() (io.ReadCloser, error) {
			b, err := get()
			if err != nil {
				return nil, err
			}
			return recordedBody{ReadCloser: b, rec: r}, nil
		}
	}
}

type recordedBody struct {
	io.ReadCloser
	rec *requestRecord
}

func (b recordedBody) Read(p []byte) (int, error) {
	if err := b.rec.run(); err != nil {
		return 0, err
	}
	return b.ReadCloser.Read(p)
}

// checkKeys checks a Web Push subscription's keys (RFC 8291 section 3):
// p256dh an uncompressed point on P-256, auth 16 bytes.
func checkKeys(s PushSubscription) error {
	pub, err := decodeKey(s.P256dh)
	switch {
	case err != nil:
		return fmt.Errorf("subscription key p256dh is not base64url: %w", err)
	case len(pub) != 65:
		return fmt.Errorf("subscription key p256dh is %d bytes, not 65", len(pub))
	}
	if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
		return fmt.Errorf("subscription key p256dh is not a P-256 public key: %w", err)
	}
	auth, err := decodeKey(s.Auth)
	switch {
	case err != nil:
		return fmt.Errorf("subscription key auth is not base64url: %w", err)
	case len(auth) != 16:
		return fmt.Errorf("subscription key auth is %d bytes, not 16", len(auth))
	}
	return nil
}

// decodeKey decodes base64url with or without padding, as browsers give
// it, or standard base64, which some clients send.
func decodeKey(k string) ([]byte, error) {
	k = strings.TrimRight(k, "=")
	if b, err := base64.RawURLEncoding.DecodeString(k); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(k)
}

// canonicalEndpoint writes an endpoint URL with a lower-case scheme and
// host and without a default port, so the VAPID token's aud, which the
// push library builds from it, is the origin exactly (RFC 6454 section
// 6.1): a push service compares it with its own.
func canonicalEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return endpoint
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	return u.String()
}

// CheckVAPID checks the Web Push configuration when the worker starts,
// rather than letting every push service refuse every message: the key
// pair is a P-256 pair, and the subject is the contact RFC 8292 section 2.1
// asks for, a mailto: address or an https: URL.
func CheckVAPID(cfg PushConfig) error {
	sub := cfg.Subject
	switch {
	case strings.HasPrefix(sub, "mailto:"):
		a, err := mail.ParseAddress(strings.TrimPrefix(sub, "mailto:"))
		if err != nil || a.Name != "" || strings.Contains(a.Address, ":") {
			return fmt.Errorf("LOJAL_VAPID_SUBJECT %q: want mailto: followed by one plain address, such as mailto:push@example.com", sub)
		}
	case strings.HasPrefix(sub, "https://"):
		if u, err := url.Parse(sub); err != nil || u.Host == "" {
			return fmt.Errorf("LOJAL_VAPID_SUBJECT %q is not a URL", sub)
		}
	default:
		return fmt.Errorf("LOJAL_VAPID_SUBJECT %q: want a mailto: address or an https: URL push services can contact (RFC 8292)", sub)
	}
	priv, err := decodeKey(cfg.VAPIDPrivateKey)
	if err != nil {
		return errors.New("LOJAL_VAPID_PRIVATE_KEY is not base64url")
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("LOJAL_VAPID_PRIVATE_KEY is not a P-256 private key: %w", err)
	}
	pub, err := decodeKey(cfg.VAPIDPublicKey)
	if err != nil || !bytes.Equal(pub, key.PublicKey().Bytes()) {
		return errors.New("LOJAL_VAPID_PUBLIC_KEY is not the public key of LOJAL_VAPID_PRIVATE_KEY")
	}
	return nil
}

// topic makes a Web Push Topic header (at most 32 URL-safe characters).
func topic(messageID string) string {
	t := []byte{}
	for i := 0; i < len(messageID) && len(t) < 32; i++ {
		c := messageID[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			t = append(t, c)
		}
	}
	return string(t)
}

func host(endpoint string) string {
	if len(endpoint) > 40 {
		return endpoint[:40] + "..."
	}
	return endpoint
}

// GenerateVAPIDKeys makes a new VAPID key pair (base64url).
func GenerateVAPIDKeys() (private, public string, err error) {
	return webpush.GenerateVAPIDKeys()
}
