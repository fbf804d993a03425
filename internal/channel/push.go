package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

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

// providerRequest is the body the HTTP provider adapter sends.
type providerRequest struct {
	To string `json:"to"`
	Payload
}

// Send implements Sender. It reports subscriptions the push service says
// are gone (404, 410) in Receipt.Expired. When none is left it returns
// ErrNoLiveSubscription; when none accepted but some failed temporarily it
// returns a temporary error for Temporal to retry.
func (p *Push) Send(ctx context.Context, env Envelope) (Receipt, error) {
	var rc Receipt
	if len(env.Push) == 0 {
		return rc, ErrNoLiveSubscription
	}
	payload := Payload{Title: env.Message.Title, Body: env.Message.Body, URL: env.Message.URL, MessageID: env.MessageID, Locale: env.Message.Locale}
	body, err := json.Marshal(payload)
	if err != nil {
		return rc, err
	}
	var temp []error
	for _, s := range env.Push {
		status, err := p.sendOne(ctx, s, env.MessageID, body, payload)
		switch {
		case errors.Is(err, ErrForbiddenAddress):
			// Retrying cannot change that; the subscription is kept (the
			// allowlist may be what is wrong) but this message is refused.
			p.log.Warn("push endpoint refused", "endpoint", host(s.Endpoint), "err", err)
		case err != nil:
			temp = append(temp, err)
		case status == http.StatusNotFound || status == http.StatusGone:
			rc.Expired = append(rc.Expired, s)
		case status >= 200 && status < 300:
			rc.Delivered++
		case status == http.StatusTooManyRequests || status >= 500:
			temp = append(temp, fmt.Errorf("push to %s: HTTP %d", host(s.Endpoint), status))
		default:
			// 400, 401, 403, 413: this subscription will not work; keep
			// it (it may be a configuration problem) but do not retry.
			p.log.Warn("push refused", "endpoint", host(s.Endpoint), "status", status)
		}
	}
	switch {
	case rc.Delivered > 0:
		return rc, nil
	case len(temp) > 0:
		return rc, fmt.Errorf("push: %w", errors.Join(temp...))
	case len(rc.Expired) == len(env.Push):
		return rc, ErrNoLiveSubscription
	}
	return rc, &PermanentError{Err: errors.New("every push subscription refused the message")}
}

func (p *Push) sendOne(ctx context.Context, s PushSubscription, messageID string, body []byte, payload Payload) (int, error) {
	var resp *http.Response
	var err error
	switch s.Kind {
	case KindWebPush:
		if p.cfg.VAPIDPrivateKey == "" {
			return 0, &PermanentError{Err: errors.New("web push is not configured (no VAPID keys)")}
		}
		resp, err = webpush.SendNotificationWithContext(ctx, body, &webpush.Subscription{Endpoint: s.Endpoint,
			Keys: webpush.Keys{P256dh: s.P256dh, Auth: s.Auth}}, &webpush.Options{
			HTTPClient:      p.cfg.Client,
			Subscriber:      p.cfg.Subject,
			VAPIDPublicKey:  p.cfg.VAPIDPublicKey,
			VAPIDPrivateKey: p.cfg.VAPIDPrivateKey,
			TTL:             int(p.cfg.TTL.Seconds()),
			// A retried send replaces, rather than repeats, a message the
			// push service still holds.
			Topic:   topic(messageID),
			Urgency: webpush.UrgencyNormal,
		})
	case KindHTTP:
		if p.cfg.ProviderURL == "" {
			return 0, &PermanentError{Err: errors.New("HTTP push provider is not configured")}
		}
		b, merr := json.Marshal(providerRequest{To: s.Endpoint, Payload: payload})
		if merr != nil {
			return 0, merr
		}
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.ProviderURL, bytes.NewReader(b))
		if rerr != nil {
			return 0, rerr
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", messageID)
		if p.cfg.ProviderToken != "" {
			req.Header.Set("Authorization", "Bearer "+p.cfg.ProviderToken)
		}
		resp, err = p.cfg.Client.Do(req)
	default:
		return 0, &PermanentError{Err: fmt.Errorf("unknown push subscription kind %q", s.Kind)}
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
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
