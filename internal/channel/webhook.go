package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Webhook posts JSON to helpers' webhooks (a helpdesk, a chat channel).
// A webhook URL often is the secret (a token in the path or query, user
// information), so no error, log line or result of Webhook carries more
// of it than RedactURL leaves. Webhooks are dialled through the same
// egress checks as Web Push: a policy.yaml or a customer record
// (helper_webhook) must not be able to point the worker at its own
// network.
type Webhook struct {
	egress *Egress
	client *http.Client
}

// NewWebhook returns a Webhook whose requests go where e allows. The push
// service allowlist (e.Hosts) does not apply: a helpdesk is not a push
// service.
func NewWebhook(e *Egress, timeout time.Duration) *Webhook {
	we := &Egress{AllowLoopback: e.AllowLoopback, Resolver: e.Resolver}
	return &Webhook{egress: we, client: we.Client(timeout)}
}

// RedactURL shows where a URL points without what may be a secret: the
// scheme and host, never user information, path or query.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a webhook URL that does not parse)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		s += "/…"
	}
	return s
}

// Post sends body to the webhook with an Idempotency-Key header (the
// receiver drops a delivery it has seen; retries carry the same key).
// Refusals (a URL that is not https, or one that resolves to an address
// lojal does not connect to) and 4xx answers other than 408 and 429 are
// *PermanentError; anything else may pass on a retry.
func (w *Webhook) Post(ctx context.Context, raw, key string, body []byte) error {
	where := RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return &PermanentError{Err: fmt.Errorf("webhook %s: not a URL", where)}
	}
	// Plain http only where loopback is allowed (tests, local
	// development): the URL and the body are the helper's secrets.
	if u.Scheme != "https" && !(u.Scheme == "http" && w.egress.AllowLoopback) {
		return &PermanentError{Err: fmt.Errorf("webhook %s: %w: want an https URL", where, ErrForbiddenAddress)}
	}
	// Checked before the request is built so a refusal is told without a
	// dial; the client checks again on the address it dials.
	if _, err := w.egress.resolve(ctx, u.Hostname()); err != nil {
		return fmt.Errorf("webhook %s: %w", where, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("webhook %s: not a URL", where)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := w.client.Do(req)
	if err != nil {
		// *url.Error writes the whole URL; keep only what it wraps.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			return &PermanentError{Err: fmt.Errorf("webhook %s: %w", where, perm.Err)}
		}
		return fmt.Errorf("webhook %s: %w", where, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return nil
	case c/100 == 4 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		return &PermanentError{Err: fmt.Errorf("webhook %s answered %s", where, resp.Status)}
	default:
		return fmt.Errorf("webhook %s answered %s", where, resp.Status)
	}
}
