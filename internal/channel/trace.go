package channel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"

	"github.com/lojal/lojal/internal/telemetry"
)

// Send implements Sender: it sends env over SMTP (send) in a span of the
// trace in ctx, the last hop of a message's trace. The span says what the
// server's answer proves (sent, refused, retry, uncertain); it names the
// message by its Message-ID, never by its recipient.
func (e *Email) Send(ctx context.Context, env Envelope) (Receipt, error) {
	ctx, span := telemetry.Start(ctx, "smtp.send", attribute.String("lojal.message_id", env.MessageID))
	rc, err := e.send(ctx, env)
	span.SetAttributes(attribute.String("lojal.delivery", outcome(err)))
	telemetry.End(span, err)
	return rc, err
}

func outcome(err error) string {
	var throttled *ThrottledError
	_, permanent := IsPermanent(err)
	switch {
	case err == nil:
		return PushSent
	case IsUncertain(err):
		return PushUncertain
	case permanent:
		return "refused"
	case errors.As(err, &throttled):
		return "throttled"
	}
	return PushRetry
}

// SendTo implements SubscriptionSender: it sends to one subscription
// (sendTo) in a span of the trace in ctx, with the host of the push
// service (or provider) and its answer.
func (p *Push) SendTo(ctx context.Context, env Envelope, s PushSubscription) PushOutcome {
	ctx, span := telemetry.Start(ctx, "push.send", attribute.String("lojal.message_id", env.MessageID),
		attribute.String("server.address", p.serverAddress(s)))
	out := p.sendTo(ctx, env, s)
	span.SetAttributes(attribute.String("lojal.delivery", out.State))
	if out.Status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", out.Status))
	}
	telemetry.End(span, out.Err)
	return out
}

// serverAddress is the host a request for s goes to: the push service's
// for Web Push, the provider's for the HTTP provider. Never more: a Web
// Push endpoint's path and a provider's device token each name one
// customer's device and work as a credential for it.
func (p *Push) serverAddress(s PushSubscription) string {
	if s.Kind == KindHTTP {
		return hostOf(p.cfg.ProviderURL)
	}
	return hostOf(canonicalEndpoint(s.Endpoint))
}
