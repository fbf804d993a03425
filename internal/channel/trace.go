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
// (sendTo) in a span of the trace in ctx, with the push service's host
// and its answer.
func (p *Push) SendTo(ctx context.Context, env Envelope, s PushSubscription) PushOutcome {
	ctx, span := telemetry.Start(ctx, "push.send", attribute.String("lojal.message_id", env.MessageID),
		attribute.String("server.address", host(s.Endpoint)))
	out := p.sendTo(ctx, env, s)
	span.SetAttributes(attribute.String("lojal.delivery", out.State))
	if out.Status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", out.Status))
	}
	telemetry.End(span, out.Err)
	return out
}
