// Package activities holds the side effects of a journey run: reading the
// customer, asking the relationship policy (an atomic check-and-reserve in
// Postgres), rendering and sending, and recording how runs end. They are
// methods on one Activities struct that holds their dependencies; each
// takes one struct in and returns one struct out.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/store"
)

// Activities holds what the activities need. Create one per worker.
type Activities struct {
	Store   *store.Store
	Catalog catalog.Source
	Sender  channel.Sender
	Links   *links.Signer
	Log     *slog.Logger
	// MessageDomain is the right-hand side of Message-IDs.
	MessageDomain string
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Now is the clock (tests set it).
	Now func() time.Time
}

// ReservationTTL is how long an allowed message may take to go out. After
// that the reservation stops counting against caps, Deliver refuses to
// send it, and the run asks the policy again: a message held up by an SMTP
// outage must not land in the middle of the customer's night.
const ReservationTTL = 15 * time.Minute

// Error types for non-retryable failures.
const (
	ErrTypeCustomerGone = "CustomerGone"
	ErrTypeBadRequest   = "BadRequest"
)

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// LoadCustomerInput names a customer.
type LoadCustomerInput struct {
	CustomerID string
}

// LoadCustomerOutput is the customer, or Found=false when deleted.
type LoadCustomerOutput struct {
	Customer journey.Customer
	Found    bool
}

// LoadCustomer reads the customer as journeys see them now.
func (a *Activities) LoadCustomer(ctx context.Context, in LoadCustomerInput) (LoadCustomerOutput, error) {
	c, err := a.Store.Customer(ctx, in.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return LoadCustomerOutput{}, nil
	}
	if err != nil {
		return LoadCustomerOutput{}, err
	}
	return LoadCustomerOutput{Customer: c, Found: true}, nil
}

// DecideInput is one ask of the policy for one message.
type DecideInput struct {
	WorkflowID string
	// RunID is the first run id of the workflow chain: with the step, visit
	// and ask it makes a key that is the same on every activity attempt.
	RunID      string
	JourneyID  string
	Version    string
	StepID     string
	CustomerID string
	Send       journey.SendAction
	Ask        int
	FirstAsked time.Time
}

// RequestKey identifies the message across asks.
func (in DecideInput) RequestKey() string {
	return fmt.Sprintf("%s@%s/%s#%d", in.WorkflowID, in.RunID, in.StepID, in.Send.Visit)
}

// IdempotencyKey identifies this ask.
func (in DecideInput) IdempotencyKey() string {
	return fmt.Sprintf("%s.%d", in.RequestKey(), in.Ask)
}

// DecideOutput is the policy's answer.
type DecideOutput struct {
	Verdict        policy.Verdict
	Reason         policy.Reason
	Channel        string
	Until          time.Time
	IdempotencyKey string
	Replayed       bool
}

// SendInput is one attempt to send one message: ask the policy, and when
// it allows, deliver.
type SendInput struct {
	DecideInput
	// Trigger is the event that started the run (templates see it as .Event).
	Trigger *journey.Event
	// Received holds the events wait_for steps got, by event type
	// (templates see them as .Received).
	Received map[string]*journey.Event `json:",omitempty"`
}

// SendOutput is the policy's answer and, when it allowed, what delivery did.
type SendOutput struct {
	DecideOutput
	Delivery DeliverOutput
}

// Send asks the relationship policy and, when it allows, renders and sends
// the message. Both halves are idempotent, so Temporal may retry the whole
// activity: the decision is found again by its key instead of being taken
// twice, and delivery checks the ledger row before sending. Doing both in
// one activity halves the activity round trips of every message.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendOutput, error) {
	start := time.Now()
	d, err := a.decide(ctx, in.DecideInput)
	if err != nil {
		return SendOutput{}, err
	}
	if !d.Replayed {
		a.Metrics.Decision(string(d.Verdict), string(d.Reason), d.Channel, time.Since(start))
	}
	out := SendOutput{DecideOutput: d}
	if d.Verdict != policy.Allow {
		return out, nil
	}
	out.Delivery, err = a.deliver(ctx, DeliverInput{IdempotencyKey: d.IdempotencyKey, Trigger: in.Trigger, Received: in.Received})
	if err == nil && !out.Delivery.AlreadySent {
		a.Metrics.Message(d.Channel, out.Delivery.Status)
		if out.Delivery.Status == StatusSent {
			a.Metrics.Step(in.JourneyID, a.now().Sub(in.FirstAsked))
		}
	}
	return out, err
}

// decide asks the relationship policy, atomically with every other
// decision for the customer, and reserves a slot when it allows.
func (a *Activities) decide(ctx context.Context, in DecideInput) (DecideOutput, error) {
	cat := a.Catalog.Current()
	rules := *cat.Rules
	prio, err := policy.ParsePriority(in.Send.Priority)
	if err != nil {
		return DecideOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadRequest, err)
	}
	now := a.now()
	req := policy.Request{Key: in.RequestKey(), Journey: in.JourneyID, Step: in.StepID, Channel: in.Send.Channel,
		Fallback: in.Send.Fallback, Topic: in.Send.Topic, Priority: prio, Purpose: in.Send.Purpose, FirstAsked: in.FirstAsked}
	d, err := a.Store.Decide(ctx, store.Request{
		IdempotencyKey: in.IdempotencyKey(), RequestKey: req.Key, CustomerID: in.CustomerID, WorkflowID: in.WorkflowID,
		JourneyID: in.JourneyID, Version: in.Version, StepID: in.StepID, Template: in.Send.Template,
		Channel: in.Send.Channel, Topic: in.Send.Topic, Purpose: in.Send.Purpose, Priority: prio,
		FirstAsked: in.FirstAsked, Now: now, ReservationTTL: ReservationTTL,
	}, rules.Lookback(), func(s store.Snapshot) policy.Decision {
		return policy.Decide(rules, s.Relationship, s.Window, s.Waiting, req, now)
	})
	if errors.Is(err, store.ErrNotFound) {
		return DecideOutput{}, temporal.NewNonRetryableApplicationError("customer no longer exists", ErrTypeCustomerGone, err)
	}
	if err != nil {
		return DecideOutput{}, err
	}
	return DecideOutput{Verdict: d.Verdict, Reason: d.Reason, Channel: d.Channel, Until: d.Until,
		IdempotencyKey: in.IdempotencyKey(), Replayed: d.Replayed}, nil
}

// DeliverInput names a reservation to send.
type DeliverInput struct {
	IdempotencyKey string
	// Trigger is the event that started the run (templates see it as .Event).
	Trigger *journey.Event
	// Received holds the events wait_for steps got (.Received).
	Received map[string]*journey.Event
}

// Delivery statuses.
const (
	StatusSent    = "sent"
	StatusFailed  = "failed"
	StatusExpired = "expired"
	// StatusFallback: push could not reach the customer (every
	// subscription is gone); the run asks again for email.
	StatusFallback = "fallback"
)

// DeliverOutput says what happened.
type DeliverOutput struct {
	Status    string
	MessageID string
	Error     string
	// AlreadySent is true when an earlier attempt had sent it.
	AlreadySent bool
}

// deliver renders and sends a reserved message, at most once per
// reservation: the ledger row is checked first and marked sent after, and a
// retry reuses the Message-ID recorded before the first attempt.
// Failures that retrying cannot fix release the reservation and are
// reported in the output; temporary ones are returned as errors for
// Temporal to retry.
func (a *Activities) deliver(ctx context.Context, in DeliverInput) (DeliverOutput, error) {
	d, err := a.Store.Delivery(ctx, in.IdempotencyKey)
	if err != nil {
		return DeliverOutput{}, err
	}
	switch d.Status {
	case "sent":
		return DeliverOutput{Status: StatusSent, MessageID: d.MessageID, AlreadySent: true}, nil
	case "reserved":
	default:
		return DeliverOutput{Status: StatusFailed, Error: "reservation is " + d.Status}, nil
	}
	now := a.now()
	if !now.Before(d.ExpiresAt) {
		if err := a.Store.Release(ctx, in.IdempotencyKey, "released", "expired before it could be sent"); err != nil {
			return DeliverOutput{}, err
		}
		return DeliverOutput{Status: StatusExpired}, nil
	}
	fail := func(cause error) (DeliverOutput, error) {
		if err := a.Store.Release(ctx, in.IdempotencyKey, "failed", cause.Error()); err != nil {
			return DeliverOutput{}, err
		}
		a.Log.Warn("message not sent", "key", in.IdempotencyKey, "err", cause)
		return DeliverOutput{Status: StatusFailed, Error: cause.Error()}, nil
	}
	cust, err := a.Store.Customer(ctx, d.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(err)
	}
	if err != nil {
		return DeliverOutput{}, err
	}
	cat := a.Catalog.Current()
	env, err := a.envelope(ctx, cat, d, cust, in, now)
	var perm permanent
	if errors.As(err, &perm) {
		return fail(perm.error)
	}
	if err != nil {
		return DeliverOutput{}, err
	}
	if err := a.Store.MarkSending(ctx, in.IdempotencyKey, env.MessageID, env.To, env.Message.Locale, env.Message.Subject+env.Message.Title); err != nil {
		return DeliverOutput{}, err
	}
	// Email records the message as sent at its commit point, inside the
	// SMTP transaction (see channel.Email.Send); other channels record it
	// once Send returns.
	confirmed := false
	env.Confirm = func() error {
		if err := a.Store.MarkSent(ctx, in.IdempotencyKey, a.now()); err != nil {
			return err
		}
		confirmed = true
		return nil
	}
	rc, err := a.Sender.Send(ctx, env)
	if err != nil && confirmed {
		// Recorded, then refused at the end of DATA: not delivered.
		if uerr := a.Store.UnmarkSent(ctx, in.IdempotencyKey); uerr != nil {
			return DeliverOutput{}, errors.Join(err, uerr)
		}
	}
	for _, gone := range rc.Expired {
		if rerr := a.Store.RemovePushSubscription(ctx, gone.ID); rerr != nil {
			return DeliverOutput{}, rerr
		}
	}
	if errors.Is(err, channel.ErrNoLiveSubscription) {
		if rerr := a.Store.Release(ctx, in.IdempotencyKey, "failed", err.Error()); rerr != nil {
			return DeliverOutput{}, rerr
		}
		return DeliverOutput{Status: StatusFallback, Error: err.Error()}, nil
	}
	if err != nil {
		if perm, ok := channel.IsPermanent(err); ok {
			if perm.Bounce && d.Channel == policy.Email {
				if serr := a.Store.Suppress(ctx, policy.Email, env.To, string(policy.ReasonHardBounce), err.Error()); serr != nil {
					return DeliverOutput{}, serr
				}
			}
			return fail(err)
		}
		return DeliverOutput{}, err
	}
	if !confirmed {
		if err := a.Store.MarkSent(ctx, in.IdempotencyKey, a.now()); err != nil {
			return DeliverOutput{}, err
		}
	}
	return DeliverOutput{Status: StatusSent, MessageID: env.MessageID}, nil
}

func (a *Activities) envelope(ctx context.Context, cat *catalog.Catalog, d store.Delivery, c journey.Customer, in DeliverInput, now time.Time) (channel.Envelope, error) {
	env, err := Compose(cat, a.Links, Message{Template: d.Template, Channel: d.Channel, Topic: d.Topic, Customer: c, Trigger: in.Trigger,
		Received: in.Received, IdempotencyKey: in.IdempotencyKey, MessageID: MessageID(in.IdempotencyKey, a.MessageDomain)}, now)
	if err != nil {
		return env, permanent{err}
	}
	if d.MessageID != "" {
		env.MessageID = d.MessageID
	}
	if d.Channel != policy.Email {
		subs, err := a.Store.PushSubscriptions(ctx, c.ID)
		if err != nil {
			return env, err
		}
		for _, s := range subs {
			env.Push = append(env.Push, channel.PushSubscription(s))
		}
	}
	return env, nil
}

// Message names what Compose renders.
type Message struct {
	Template       string
	Channel        string
	Topic          string
	Customer       journey.Customer
	Trigger        *journey.Event
	Received       map[string]*journey.Event
	IdempotencyKey string
	MessageID      string
}

// Compose renders a message for one customer into an envelope: template in
// the customer's locale, their data and the trigger event, their time
// zone, and signed unsubscribe and preference links. The send path and
// `lojal journeys render` both use it, so a preview is exactly what would
// be sent. Every error it returns is permanent (bad data or template).
func Compose(cat *catalog.Catalog, signer *links.Signer, m Message, now time.Time) (channel.Envelope, error) {
	c := m.Customer
	cv, err := cat.Schema.CustomerVars(c)
	if err != nil {
		return channel.Envelope{}, fmt.Errorf("%w: %v", render.ErrRender, err)
	}
	ev, err := cat.Schema.EventVars(m.Trigger)
	if err != nil {
		return channel.Envelope{}, fmt.Errorf("%w: %v", render.ErrRender, err)
	}
	rv, err := cat.Schema.ReceivedVars(m.Received)
	if err != nil {
		return channel.Envelope{}, fmt.Errorf("%w: %v", render.ErrRender, err)
	}
	loc := cat.Rules.Location
	if c.Timezone != "" {
		if l, err := journey.LoadLocation(c.Timezone); err == nil {
			loc = l
		}
	}
	data := render.Data{Customer: cv, Event: ev, Received: rv, Location: loc}
	var unsub string
	if signer != nil {
		unsub, data.Links.Preferences = signer.For(c.ID, m.Topic, now)
		data.Links.Unsubscribe = unsub
	}
	msg, err := cat.Templates.Render(m.Template, m.Channel, c.Locale, data)
	if err != nil {
		return channel.Envelope{}, err
	}
	env := channel.Envelope{Channel: m.Channel, MessageID: m.MessageID, IdempotencyKey: m.IdempotencyKey, Message: msg, Unsubscribe: unsub}
	switch m.Channel {
	case policy.Email:
		if c.Email == "" {
			return env, errors.New("customer has no email address")
		}
		env.To = c.Email
		if fn, ok := cv["first_name"].(string); ok {
			env.ToName = fn
			if ln, ok := cv["last_name"].(string); ok {
				env.ToName += " " + ln
			}
		}
	default:
		env.To = c.ID
	}
	return env, nil
}

// permanent marks envelope failures that retrying cannot fix.
type permanent struct{ error }

// MessageID derives a message's Message-ID from its idempotency key, so
// every attempt to send one message carries the same id.
func MessageID(key, domain string) string {
	sum := sha256.Sum256([]byte(key))
	if domain == "" {
		domain = "lojal.invalid"
	}
	return hex.EncodeToString(sum[:16]) + "@" + domain
}

// FinishRunInput records how a run ended.
type FinishRunInput struct {
	JourneyID string
	EntryID   string
	Outcome   string
}

// FinishRun records a run's outcome.
func (a *Activities) FinishRun(ctx context.Context, in FinishRunInput) error {
	return a.Store.FinishRun(ctx, in.JourneyID, in.EntryID, in.Outcome)
}
