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
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lojal/lojal/internal/bounce"
	"github.com/lojal/lojal/internal/catalog"
	"github.com/lojal/lojal/internal/channel"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/links"
	"github.com/lojal/lojal/internal/metrics"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
	"github.com/lojal/lojal/internal/store"
	"github.com/lojal/lojal/internal/telemetry"
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
	// VERP, when set, gives every email its own signed Return-Path, so a
	// bounce proves which message to which address it is about.
	VERP *bounce.VERP
	// Metrics may be nil.
	Metrics *metrics.Metrics
	// Webhooks posts replies and escalations to helpers' webhooks,
	// through the egress checks; nil forwards by email only.
	Webhooks *channel.Webhook
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
	// ErrTypePushRetry: some push subscriptions failed temporarily; the
	// retry tries only those.
	ErrTypePushRetry = "PushRetry"
	// ErrTypeThrottled: the relay asked lojal to slow down; the message
	// is tried again later, later each time (throttleDelay).
	ErrTypeThrottled = "Throttled"
	// ErrTypeDecisionTimeout: a decision gave up waiting for the
	// customer's lock or the database (store.ErrTimeout); nothing was
	// recorded and the retry decides afresh.
	ErrTypeDecisionTimeout = "DecisionTimeout"
)

// throttleDelay is how long a message the relay throttled waits before
// its next attempt: 15 seconds, doubling with each attempt up to 5
// minutes, plus up to a fifth more at random (jitter in [0, 1)) so that
// messages throttled together do not come back together. The activity's
// regular retries (2 seconds, doubling) would come back at nearly full
// speed, which is what a relay that is throttling punishes.
func throttleDelay(attempt int32, jitter float64) time.Duration {
	d := 15 * time.Second
	for i := int32(1); i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return d + time.Duration(jitter*float64(d)/5)
}

// retryDelay is when a throttled message is tried again: after
// throttleDelay when the relay throttled it; when this process held it
// back itself (its pace), at its next turn, plus the same jitter, so the
// message does not take a longer and longer pause for a relay it never
// reached.
func retryDelay(t *channel.ThrottledError, attempt int32, jitter float64) time.Duration {
	if t.RetryAfter > 0 {
		return t.RetryAfter + time.Duration(jitter*float64(t.RetryAfter)/5)
	}
	return throttleDelay(attempt, jitter)
}

// later turns a "slow down" into a retry after retryDelay; other errors
// keep the activity's retry policy.
func later(ctx context.Context, err error) error {
	var t *channel.ThrottledError
	if !errors.As(err, &t) {
		return err
	}
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeThrottled,
		temporal.ApplicationErrorOptions{NextRetryDelay: retryDelay(t, attempt, rand.Float64()), Cause: err})
}

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
// the message: Decide and Deliver in one activity. Both halves are
// idempotent, so Temporal may retry the whole activity: the decision is
// found again by its key instead of being taken twice, and delivery checks
// the ledger row before sending. Runs that started before the two halves
// ran on queues of their own (workflows: changeSendQueues) still call it.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendOutput, error) {
	d, err := a.Decide(ctx, in.DecideInput)
	if err != nil {
		return SendOutput{}, err
	}
	out := SendOutput{DecideOutput: d}
	if d.Verdict != policy.Allow {
		return out, nil
	}
	out.Delivery, err = a.Deliver(ctx, DeliverInput{IdempotencyKey: d.IdempotencyKey, Trigger: in.Trigger, Received: in.Received,
		Channel: d.Channel, JourneyID: in.JourneyID, FirstAsked: in.FirstAsked})
	return out, err
}

// Decide asks the relationship policy about one message and, when it
// allows, reserves its slot (atomically with every other decision for the
// customer). An ask of a message already decided finds that decision.
func (a *Activities) Decide(ctx context.Context, in DecideInput) (DecideOutput, error) {
	start := time.Now()
	d, err := a.decide(ctx, in)
	if err == nil && !d.Replayed {
		a.Metrics.Decision(string(d.Verdict), string(d.Reason), d.Channel, time.Since(start))
	}
	return d, err
}

// Deliver renders and sends a message the policy allowed, at most once
// (see deliver). The journey workflow runs it on its channel's task queue,
// whose rate the Temporal server limits across every worker
// (docs/delivery.md, "Send rate").
func (a *Activities) Deliver(ctx context.Context, in DeliverInput) (DeliverOutput, error) {
	out, err := a.deliver(ctx, in)
	if err == nil && !out.AlreadySent {
		a.Metrics.Message(in.Channel, out.Status)
		if out.Status == StatusSent && !in.FirstAsked.IsZero() {
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
	// The bases a marketing message may rely on are read from the journey
	// as deployed now, like the rules: narrowing them holds for runs in
	// flight too. A journey no longer deployed may rely on consent only.
	var bases []policy.Basis
	if j, ok := cat.Journey(in.JourneyID); ok {
		bases = j.Bases
	}
	req := policy.Request{Key: in.RequestKey(), Journey: in.JourneyID, Step: in.StepID, Channel: in.Send.Channel,
		Fallback: in.Send.Fallback, Topic: in.Send.Topic, Priority: prio, Purpose: in.Send.Purpose, FirstAsked: in.FirstAsked,
		Bases: bases}
	ctx, span := telemetry.Start(ctx, "policy.Decide", attribute.String("lojal.journey", in.JourneyID), attribute.String("lojal.step", in.StepID))
	d, err := a.Store.Decide(ctx, store.Request{
		IdempotencyKey: in.IdempotencyKey(), RequestKey: req.Key, CustomerID: in.CustomerID, WorkflowID: in.WorkflowID,
		RunID: in.RunID, JourneyID: in.JourneyID, Version: in.Version, StepID: in.StepID, Template: in.Send.Template,
		Channel: in.Send.Channel, Topic: in.Send.Topic, Purpose: in.Send.Purpose, Priority: prio,
		FirstAsked: in.FirstAsked, Now: now, ReservationTTL: ReservationTTL,
		MessageID: MessageID(in.IdempotencyKey(), a.MessageDomain),
	}, rules.Lookback(), func(s store.Snapshot) policy.Decision {
		return policy.Decide(rules, s.Relationship, s.Window, s.Waiting, req, now)
	})
	span.SetAttributes(attribute.String("lojal.verdict", string(d.Verdict)), attribute.String("lojal.reason", string(d.Reason)),
		attribute.String("lojal.channel", d.Channel))
	telemetry.End(span, err)
	if errors.Is(err, store.ErrNotFound) {
		return DecideOutput{}, temporal.NewNonRetryableApplicationError("customer no longer exists", ErrTypeCustomerGone, err)
	}
	if errors.Is(err, store.ErrTimeout) {
		return DecideOutput{}, temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeDecisionTimeout, temporal.ApplicationErrorOptions{Cause: err})
	}
	if err != nil {
		return DecideOutput{}, err
	}
	return DecideOutput{Verdict: d.Verdict, Reason: d.Reason, Channel: d.Channel, Until: d.Until,
		IdempotencyKey: d.Key, Replayed: d.Replayed}, nil
}

// DeliverInput names a reservation to send.
type DeliverInput struct {
	IdempotencyKey string
	// Trigger is the event that started the run (templates see it as .Event).
	Trigger *journey.Event
	// Received holds the events wait_for steps got (.Received).
	Received map[string]*journey.Event `json:",omitempty"`
	// Channel (the policy's), JourneyID and FirstAsked are for metrics.
	Channel    string
	JourneyID  string
	FirstAsked time.Time
}

// Delivery statuses.
const (
	StatusSent    = "sent"
	StatusFailed  = "failed"
	StatusExpired = "expired"
	// StatusUncertain: the server may have the message (no answer came
	// after the whole message was handed over). It counts as sent and is
	// never sent again automatically.
	StatusUncertain = "uncertain"
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

// deliver renders and sends a reserved message, at most once per message.
// The ledger row says what is known (reserved, sending, uncertain, sent,
// failed) and every write names the attempt that makes it, so a retry —
// by Temporal, or by a later ask of the same message — continues from what
// the earlier attempt left behind and never hands a message over twice.
// Failures that retrying cannot fix release the reservation and are
// reported in the output; temporary ones are returned as errors for
// Temporal to retry. docs/delivery.md sets out what each channel can and
// cannot guarantee.
func (a *Activities) deliver(ctx context.Context, in DeliverInput) (DeliverOutput, error) {
	d, err := a.Store.Delivery(ctx, in.IdempotencyKey)
	if err != nil {
		return DeliverOutput{}, err
	}
	switch {
	case d.Status == StatusSent || d.Status == StatusUncertain:
		return DeliverOutput{Status: d.Status, MessageID: d.MessageID, Error: d.Error, AlreadySent: true}, nil
	case d.Status == "reserved" || d.Status == "sending":
	// A message settled before is asked about again when its run asks
	// again from an earlier ask (continued as new in the middle of the
	// step): the answer is the one it got, so the run goes on the same way.
	case d.Status == "released" && d.Error == expiredWhy:
		return DeliverOutput{Status: StatusExpired}, nil
	case d.Status == StatusFailed && d.Error == channel.ErrNoLiveSubscription.Error():
		return DeliverOutput{Status: StatusFallback, Error: d.Error}, nil
	default:
		return DeliverOutput{Status: StatusFailed, Error: "reservation is " + d.Status}, nil
	}
	now := a.now()
	if !now.Before(d.ExpiresAt) {
		return a.expire(ctx, in.IdempotencyKey, d)
	}
	fail := func(cause error) (DeliverOutput, error) {
		if err := a.Store.Release(ctx, in.IdempotencyKey, StatusFailed, cause.Error()); err != nil {
			return DeliverOutput{}, err
		}
		a.Log.WarnContext(ctx, "message not sent", "key", in.IdempotencyKey, "err", cause)
		return DeliverOutput{Status: StatusFailed, Error: cause.Error()}, nil
	}
	cust, consent, suppressed, err := a.Store.CustomerToSend(ctx, d.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(err)
	}
	if err != nil {
		return DeliverOutput{}, err
	}
	cat := a.Catalog.Current()
	if d.Status == "reserved" || (d.Status == "sending" && d.Channel == policy.Email) {
		// A message may wait on its channel's send queue after the policy
		// allowed it, or be retried after an attempt that handed nothing
		// over (an email "sending" has not reached the server; a push
		// message may have reached some devices): a withdrawal recorded
		// meanwhile stops it here, before anything is handed over.
		why, ok := withdrawn(cat, d, consent)
		if !ok && d.Channel == policy.Email && suppressed != "" {
			// So does a complaint or a hard bounce about another message.
			why, ok = "the address was suppressed ("+suppressed+") after the message was allowed", true
		}
		if ok {
			if err := a.Store.Release(ctx, in.IdempotencyKey, "released", why); err != nil {
				return DeliverOutput{}, err
			}
			a.Log.Info("message not sent", "key", in.IdempotencyKey, "why", why)
			return DeliverOutput{Status: StatusFailed, Error: why}, nil
		}
	}
	env, err := a.envelope(ctx, cat, d, cust, in, now)
	var perm permanent
	if errors.As(err, &perm) {
		return fail(perm.error)
	}
	if err != nil {
		return DeliverOutput{}, err
	}
	if d.Channel == policy.Email {
		return a.deliverEmail(ctx, in.IdempotencyKey, env, fail)
	}
	return a.deliverPush(ctx, in.IdempotencyKey, d, env, fail)
}

// withdrawn reports whether the customer's consent ledger no longer gives
// a reserved message a basis on its channel, and why.
func withdrawn(cat *catalog.Catalog, d store.Delivery, consent []policy.ConsentEntry) (string, bool) {
	var bases []policy.Basis
	if j, ok := cat.Journey(d.JourneyID); ok {
		bases = j.Bases
	}
	_, fact, reason := cat.Rules.BasisFor(consent, d.Topic, bases, d.Channel)
	if reason == "" {
		return "", false
	}
	return fmt.Sprintf("no basis any more when it was to be sent (%s): %s", reason, fact), true
}

// expiredWhy is the reason a message that expired is released with.
const expiredWhy = "expired before it could be sent"

// expire ends a message whose reservation ran out before it was sent: a
// message held up by an outage must not land in the middle of the night.
// What an earlier attempt handed over is kept: a push message that reached
// some devices is sent.
func (a *Activities) expire(ctx context.Context, key string, d store.Delivery) (DeliverOutput, error) {
	if d.Status == "sending" && d.Channel != policy.Email {
		if _, err := a.Store.OrphanedPushSends(ctx, key, "the attempt that made the request stopped before the answer"); err != nil {
			return DeliverOutput{}, err
		}
		subs, err := a.Store.PushDeliveries(ctx, key)
		if err != nil {
			return DeliverOutput{}, err
		}
		sum := summarise(subs)
		switch {
		case sum.sent > 0:
			return a.sent(ctx, key, d.Channel, d.Attempt, d.MessageID)
		case sum.uncertain > 0:
			return a.uncertain(ctx, key, d.Channel, d.Attempt, d.MessageID, sum.uncertainWhy)
		}
	}
	if err := a.Store.Release(ctx, key, "released", expiredWhy); err != nil {
		return DeliverOutput{}, err
	}
	return DeliverOutput{Status: StatusExpired}, nil
}

func sending(env channel.Envelope) store.Sending {
	return store.Sending{MessageID: env.MessageID, Address: env.To, Locale: env.Message.Locale, Subject: env.Message.Subject + env.Message.Title}
}

// deliverEmail sends over SMTP. The ledger says "uncertain" from the commit
// point on (just before the final "." of DATA): if the answer to the "."
// never comes, the server may have the message, and it is not sent again.
// Only an explicit 4xx or 5xx to the "." proves it was not taken.
func (a *Activities) deliverEmail(ctx context.Context, key string, env channel.Envelope, fail func(error) (DeliverOutput, error)) (DeliverOutput, error) {
	attempt, err := a.Store.BeginSend(ctx, key, sending(env))
	if err != nil {
		return DeliverOutput{}, err
	}
	// The commit point. Confirm checks, just before the final ".", that
	// this attempt still owns the message; HandOver checks that its time
	// is not over (a process paused since may find a retry has the
	// message, attemptLive) and then sends the record
	// that the server may have it and the "." goes out right behind it,
	// so a worker killed at any moment leaves either no record and no "."
	// (the next attempt sends), or both in the kernel's hands (the record
	// reaches Postgres, the message is uncertain and never resent). Only
	// the few instructions between the two writes remain (docs/delivery.md).
	committed := false
	var handOver *store.HandOver
	defer func() {
		if handOver != nil && !committed {
			handOver.Abandon()
		}
	}()
	env.Confirm = func() error {
		h, err := a.Store.PrepareHandOver(ctx, key, attempt, a.now())
		if err != nil {
			return err
		}
		handOver = h
		return nil
	}
	env.HandOver = func() (func() error, error) {
		if err := attemptLive(ctx); err != nil {
			return nil, err
		}
		if err := handOver.Send(ctx, a.now(), "handed over; awaiting the server's reply to the end of data"); err != nil {
			return nil, err
		}
		committed = true
		return handOver.Wait, nil
	}
	_, err = a.Sender.Send(ctx, env)
	if err == nil {
		return a.sent(ctx, key, policy.Email, attempt, env.MessageID)
	}
	perm, isPerm := channel.IsPermanent(err)
	switch {
	case !committed && errors.Is(err, store.ErrReservationOver):
		// Begun in time, its end came after: nothing was handed over,
		// and it must not be now.
		if err := a.Store.Release(ctx, key, "released", expiredWhy); err != nil {
			return DeliverOutput{}, err
		}
		return DeliverOutput{Status: StatusExpired}, nil
	case !committed && isPerm:
		// Refused before the message was handed over.
		if perm.Bounce {
			if serr := a.Store.Suppress(ctx, policy.Email, env.To, string(policy.ReasonHardBounce), err.Error()); serr != nil {
				return DeliverOutput{}, serr
			}
		}
		return fail(err)
	case !committed:
		// Nothing was handed over in full: the next attempt sends it.
		return DeliverOutput{}, later(ctx, err)
	case channel.IsUncertain(err):
		return a.uncertain(ctx, key, policy.Email, attempt, env.MessageID, err.Error())
	case isPerm:
		// A 5xx to the final ".": the server refused this message (its
		// content, a policy); that says nothing about the address.
		if rerr := a.record(ctx, key, attempt, StatusFailed, func() error { return a.Store.MarkRefused(ctx, key, attempt, false, err.Error()) }); rerr != nil {
			return DeliverOutput{}, errors.Join(err, rerr)
		}
		a.Log.WarnContext(ctx, "message refused at the end of data", "key", key, "err", err)
		return DeliverOutput{Status: StatusFailed, Error: err.Error()}, nil
	default:
		// A 4xx to the final ".": not taken, try again.
		if rerr := a.record(ctx, key, attempt, "reserved", func() error { return a.Store.MarkRefused(ctx, key, attempt, true, err.Error()) }); rerr != nil {
			return DeliverOutput{}, errors.Join(err, rerr)
		}
		return DeliverOutput{}, later(ctx, err)
	}
}

// handOverMargin is how much of an attempt's time must be left for it to
// hand a message over: it covers clock skew between the worker and the
// Temporal server, which times the attempt out by its own clock.
const handOverMargin = time.Second

// attemptLive says whether this activity attempt may still hand a message
// over. Confirm proved the attempt owned the message, but a process that
// stops after it (SIGSTOP, a VM freeze, a long GC pause) can resume after
// Temporal gave the attempt up and a retry took the message and delivered
// it: only the attempt's deadline, which Temporal passes before it lets
// another attempt begin, tells the stale one. (A worker killed instead
// writes nothing more, and the ownership check is enough.) A pause
// between this check and the final "." (a few instructions) is not
// covered.
func attemptLive(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not handed over: %w: another may have the message: %w", errAttemptOver, err)
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < handOverMargin {
		return fmt.Errorf("not handed over: %w: %s left, less than %s; the next attempt sends it",
			errAttemptOver, time.Until(d).Round(time.Millisecond), handOverMargin)
	}
	return nil
}

// errAttemptOver is attemptLive's refusal.
var errAttemptOver = errors.New("the attempt's time is over")

// deliverPush sends to each of the customer's push subscriptions on its
// own: the request is recorded as it leaves and its answer after, so
// a retry tries only the subscriptions that failed temporarily, and a
// request whose attempt died (the worker was killed after the service took
// it) is uncertain rather than repeated.
func (a *Activities) deliverPush(ctx context.Context, key string, d store.Delivery, env channel.Envelope,
	fail func(error) (DeliverOutput, error)) (DeliverOutput, error) {
	ps, ok := a.Sender.(channel.SubscriptionSender)
	if !ok {
		return fail(errors.New("no push sender is configured"))
	}
	subs, err := a.Store.PushDeliveries(ctx, key)
	if err != nil {
		return DeliverOutput{}, err
	}
	if len(env.Push) == 0 && len(subs) == 0 {
		if err := a.Store.Release(ctx, key, StatusFailed, channel.ErrNoLiveSubscription.Error()); err != nil {
			return DeliverOutput{}, err
		}
		return DeliverOutput{Status: StatusFallback, Error: channel.ErrNoLiveSubscription.Error()}, nil
	}
	attempt, err := a.Store.BeginSend(ctx, key, sending(env))
	if err != nil {
		return DeliverOutput{}, err
	}
	if _, err := a.Store.OrphanedPushSends(ctx, key, "the attempt that made the request stopped before the answer"); err != nil {
		return DeliverOutput{}, err
	}
	// Read again now that this attempt owns the message: what an earlier
	// attempt recorded up to here (a request's record that BeginSend
	// waited for, and that attempt's answer after it) stands.
	if subs, err = a.Store.PushDeliveries(ctx, key); err != nil {
		return DeliverOutput{}, err
	}
	now := a.now()
	for _, s := range env.Push {
		if prev, seen := subs[s.ID]; seen && (prev.Status != channel.PushRetry || prev.RetryAfter.After(now)) {
			continue
		}
		if !a.now().Before(d.ExpiresAt) {
			// The reservation ended while earlier devices were sent to
			// (quiet hours began, say): this device is not woken. What
			// was handed over stands; expire says which.
			d.Status, d.Attempt, d.MessageID = "sending", attempt, env.MessageID
			return a.expire(ctx, key, d)
		}
		// The request is recorded when it is about to leave (its
		// connection made, only its body left to write), not before: a
		// worker killed while it connected leaves no record, and the next
		// attempt sends to this device rather than call it uncertain.
		// Then, as for an email's final ".", the attempt checks that it
		// still owns the message and has time left, and the record goes
		// to Postgres with the body right behind it, without waiting for
		// Postgres in between: a worker killed at any moment leaves both
		// or neither in the kernel's hands (but for what HTTP/2 may wait
		// for between the two, see channel.WithRequestRecord).
		var recordErr error
		out := ps.SendTo(channel.WithRequestRecord(ctx, func() (func(), error) {
			h, err := a.Store.PrepareHandOver(ctx, key, attempt, a.now())
			if err != nil {
				return nil, err
			}
			if err := attemptLive(ctx); err != nil {
				h.Abandon()
				return nil, err
			}
			if err := h.SendPush(ctx, s.ID); err != nil {
				h.Abandon()
				return nil, err
			}
			return func() { recordErr = h.Wait() }, nil
		}), env, s)
		pd := store.PushDelivery{Status: out.State}
		if out.Err != nil {
			pd.Error = out.Err.Error()
		}
		if out.RetryAfter > 0 {
			pd.RetryAfter = a.now().Add(out.RetryAfter)
		}
		switch {
		case errors.Is(out.Err, store.ErrLedgerConflict), errors.Is(out.Err, errAttemptOver):
			// Another attempt owns the message now, or may by the time
			// this one writes: this one writes nothing more.
			return DeliverOutput{}, out.Err
		case errors.Is(out.Err, store.ErrReservationOver):
			d.Status, d.Attempt, d.MessageID = "sending", attempt, env.MessageID
			return a.expire(ctx, key, d)
		case errors.Is(recordErr, store.ErrLedgerConflict):
			// The request left with its record, but another attempt took
			// the message between this one's check and its record (or
			// finished the device): the answer is true and is written,
			// and this attempt stops there.
			if err := a.Store.RecordPush(ctx, key, s.ID, pd); err != nil {
				return DeliverOutput{}, errors.Join(recordErr, err)
			}
			return DeliverOutput{}, recordErr
		case recordErr != nil:
			// The body left while the record failed (Postgres went away,
			// say): the answer, written next again and again within the
			// attempt's time, stands in for it.
			a.Log.WarnContext(ctx, "push request left without its record; its answer is to be recorded instead", "key", key, "subscription", s.ID, "err", recordErr)
		}
		if err := a.persist(ctx, key, "push "+pd.Status, func() error { return a.Store.RecordPush(ctx, key, s.ID, pd) }); err != nil {
			return DeliverOutput{}, err
		}
		subs[s.ID] = pd
		if out.State == channel.PushGone {
			if err := a.Store.RemovePushSubscription(ctx, s.ID); err != nil {
				return DeliverOutput{}, err
			}
		}
	}
	sum := summarise(subs)
	switch {
	case sum.retry > 0:
		// Retry only those, no sooner than the service asked.
		delay := max(sum.retryAt.Sub(a.now()), time.Second)
		return DeliverOutput{}, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("push: %d of %d subscriptions failed temporarily: %s", sum.retry, len(subs), sum.retryWhy),
			ErrTypePushRetry, temporal.ApplicationErrorOptions{NextRetryDelay: delay})
	case sum.sent > 0:
		return a.sent(ctx, key, d.Channel, attempt, env.MessageID)
	case sum.uncertain > 0:
		return a.uncertain(ctx, key, d.Channel, attempt, env.MessageID, sum.uncertainWhy)
	case sum.gone == len(subs):
		if err := a.Store.Release(ctx, key, StatusFailed, channel.ErrNoLiveSubscription.Error()); err != nil {
			return DeliverOutput{}, err
		}
		return DeliverOutput{Status: StatusFallback, Error: channel.ErrNoLiveSubscription.Error()}, nil
	}
	return fail(fmt.Errorf("every push subscription refused the message: %s", sum.failedWhy))
}

// pushSummary counts a push message's subscriptions by state.
type pushSummary struct {
	sent, uncertain, retry, failed, gone int
	retryAt                              time.Time
	retryWhy, uncertainWhy, failedWhy    string
}

func summarise(subs map[int64]store.PushDelivery) pushSummary {
	var s pushSummary
	for _, id := range slices.Sorted(maps.Keys(subs)) {
		d := subs[id]
		switch d.Status {
		case channel.PushSent:
			s.sent++
		case channel.PushUncertain, "sending":
			s.uncertain++
			s.uncertainWhy = d.Error
		case channel.PushRetry:
			s.retry++
			s.retryWhy = d.Error
			if s.retryAt.IsZero() || d.RetryAfter.Before(s.retryAt) {
				s.retryAt = d.RetryAfter
			}
		case channel.PushGone:
			s.gone++
		default:
			s.failed++
			s.failedWhy = d.Error
		}
	}
	return s
}

// sent records a message the server took.
func (a *Activities) sent(ctx context.Context, key, ch string, attempt int, messageID string) (DeliverOutput, error) {
	at := a.now()
	if err := a.record(ctx, key, attempt, StatusSent, func() error { return a.Store.MarkSent(ctx, key, attempt, at) }); err != nil {
		return DeliverOutput{}, err
	}
	a.Log.DebugContext(ctx, "message sent", "key", key, "channel", ch, "message_id", messageID)
	return DeliverOutput{Status: StatusSent, MessageID: messageID}, nil
}

// record writes what became of a message this attempt handed over (or
// may have). Only this attempt heard the server's answer: a retry would
// find the hand-over record and call a delivered message uncertain, or,
// when that record was lost with its connection, find nothing that stops
// it from sending the message again. So the write is made again while
// Postgres is away (persist). A write whose answer was lost may have
// landed: the conflict it then meets is checked against the state it
// meant to write.
func (a *Activities) record(ctx context.Context, key string, attempt int, want string, write func() error) error {
	err := a.persist(ctx, key, want, write)
	if errors.Is(err, store.ErrLedgerConflict) {
		if d, derr := a.Store.Delivery(ctx, key); derr == nil && d.Status == want && d.Attempt == attempt {
			return nil
		}
	}
	return err
}

// recordWithin bounds persist when its context has no deadline (an
// activity's always has one: its start-to-close timeout).
const recordWithin = 30 * time.Second

// persist makes a write that records what only this attempt knows (what
// a server answered) until it lands, a conflict refuses it, or the
// attempt's time is nearly over: every write fails while Postgres
// restarts or fails over, which takes seconds, and giving up at once
// would leave the next attempt to guess.
func (a *Activities) persist(ctx context.Context, key, what string, write func() error) error {
	end, ok := ctx.Deadline()
	if !ok {
		end = time.Now().Add(recordWithin)
	}
	pause := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		err := write()
		if err == nil || errors.Is(err, store.ErrLedgerConflict) || ctx.Err() != nil || time.Until(end) < pause+handOverMargin {
			return err
		}
		a.Log.WarnContext(ctx, "could not record what the server said about a message; trying again", "key", key, "record", what, "try", tries, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// uncertain records a message the server may have: it counts as sent and
// is never sent again automatically.
func (a *Activities) uncertain(ctx context.Context, key, ch string, attempt int, messageID, why string) (DeliverOutput, error) {
	at := a.now()
	if err := a.record(ctx, key, attempt, StatusUncertain, func() error { return a.Store.MarkUncertain(ctx, key, attempt, at, why) }); err != nil {
		return DeliverOutput{}, err
	}
	a.Log.WarnContext(ctx, "delivery uncertain: the server may have the message; it will not be sent again", "key", key, "channel", ch, "reason", why)
	a.Metrics.Uncertain(ch, why)
	return DeliverOutput{Status: StatusUncertain, MessageID: messageID, Error: why}, nil
}

func (a *Activities) envelope(ctx context.Context, cat *catalog.Catalog, d store.Delivery, c journey.Customer, in DeliverInput, now time.Time) (channel.Envelope, error) {
	// The Message-ID the decision recorded, which the message is sent
	// with and its unsubscribe link names; a decision from before it was
	// recorded derives it.
	messageID := d.MessageID
	if messageID == "" {
		messageID = MessageID(in.IdempotencyKey, a.MessageDomain)
	}
	env, err := Compose(cat, a.Links, Message{Journey: d.JourneyID, Template: d.Template, Channel: d.Channel, Topic: d.Topic, Customer: c, Trigger: in.Trigger,
		Received: in.Received, IdempotencyKey: in.IdempotencyKey, MessageID: messageID}, now)
	if err != nil {
		return env, permanent{err}
	}
	if d.MessageID != "" {
		env.MessageID = d.MessageID
	}
	if a.VERP != nil && d.Channel == policy.Email {
		env.ReturnPath = a.VERP.Address(env.MessageID, env.To)
		env.UnsubscribeMail = a.VERP.UnsubscribeAddress(env.MessageID)
		// A reply comes back to the intake and names this message.
		env.ReplyTo = a.VERP.ReplyAddress(env.MessageID)
	}
	if d.Channel == policy.Email {
		env.FromName = helperName(cat, d.JourneyID, c)
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
	// Journey is the journey that sends it (one-click answers carry it).
	Journey        string
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
		unsub, data.Links.Preferences = signer.For(c.ID, m.Topic, m.MessageID, now)
		data.Links.Unsubscribe = unsub
		data.Links.Answer = func(survey, answer string) string { return signer.AnswerURL(m.Journey, c.ID, survey, answer, now) }
		// Tracked links name the message by its ledger key; a click on
		// one is engagement with it (docs/journeys.md, "Tracked links").
		data.Links.Track = func(dest string) (string, error) { return signer.ClickURL(c.ID, m.IdempotencyKey, dest, now) }
		data.Links.TrackAll = cat.Rules != nil && cat.Rules.TrackLinks
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
		// Addresses are checked on the way in; one stored before that, or
		// written to the database by hand, fails this message only.
		if err := journey.CheckEmail(c.Email); err != nil {
			return env, fmt.Errorf("customer's email address %q cannot be used: %v", c.Email, err)
		}
		env.To = c.Email
		if fn, ok := cv["first_name"].(string); ok {
			ln, _ := cv["last_name"].(string)
			env.ToName = journey.DisplayName(fn + " " + ln)
		}
	default:
		env.To = c.ID
		// One push message carries so much; data that makes it larger is
		// cut here by the documented rule, so a preview shows what is sent.
		p, err := channel.FitPayload(channel.Payload{Title: msg.Title, Body: msg.Body, URL: msg.URL, MessageID: m.MessageID, Locale: msg.Locale})
		if err != nil {
			return env, err
		}
		env.Message.Title, env.Message.Body = p.Title, p.Body
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

// ClaimEntryInput names the entry a starting run claims and the run.
type ClaimEntryInput struct {
	JourneyID string
	EntryID   string
	// RunID is the run's first run id (the chain's, across continue-as-new).
	RunID string
}

// ClaimEntry claims the entry's run row for a starting run and reports
// whether the run owns it (store.ClaimEntry): a run that does not is a
// second start of an entry whose run is over.
func (a *Activities) ClaimEntry(ctx context.Context, in ClaimEntryInput) (bool, error) {
	return a.Store.ClaimEntry(ctx, in.JourneyID, in.EntryID, in.RunID)
}

// RequeueInput names events a finishing run received and did not apply.
type RequeueInput struct {
	JourneyID  string
	WorkflowID string
	EventIDs   []string
}

// Requeue hands events a finishing run did not apply back to routing for
// its journey (internal/dispatch routes them again once the run closed).
func (a *Activities) Requeue(ctx context.Context, in RequeueInput) error {
	return a.Store.Requeue(ctx, in.JourneyID, in.WorkflowID, in.EventIDs)
}
