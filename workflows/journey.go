// Package workflows runs each customer's journey durably on Temporal. The
// workflow only drives internal/journey: it asks Next what to do, carries
// the answer out with timers, signals and activities, and reports back.
// Everything here must stay deterministic: time comes from workflow.Now,
// waiting from workflow timers, and maps are only read by key.
package workflows

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lojal/lojal/activities"
	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
)

// Names shared by workers and starters.
const (
	// TaskQueue is where journey workflows and their activities run.
	TaskQueue = "lojal-journeys"
	// JourneyWorkflow is the registered name of Workflows.Journey.
	JourneyWorkflow = "Journey"
	// SignalEvent delivers a journey.Event to a run.
	SignalEvent = "event"
	// QueryState returns the run's RunInfo.
	QueryState = "state"
	// SignalMigrate moves a run to another version (MigrateSignal).
	SignalMigrate = "migrate"
)

// RunInfo is what QueryState returns.
type RunInfo struct {
	JourneyID string
	Version   string
	State     journey.State
}

// MigrateSignal asks a run to continue on another version of its journey.
// Steps maps step ids of the running version to the new one; unmapped
// steps keep their id. A run whose step does not exist in the new version,
// or has another kind there, refuses and stays on its version.
type MigrateSignal struct {
	Bundle  journey.Bundle
	Version string
	Steps   map[string]string
}

// WorkflowID is the id of a customer's run of a journey:
// journey/<journey-id>/<customer-id>[/<key>]. The key is path-escaped so
// a key containing "/" cannot be confused with the structure.
func WorkflowID(journeyID, customerID, key string) string {
	id := "journey/" + journeyID + "/" + customerID
	if key != "" {
		id += "/" + url.PathEscape(key)
	}
	return id
}

// JourneyInput starts (or continues) one run.
type JourneyInput struct {
	// Bundle is the journey definition the run started with; it stays the
	// same for the whole run, whatever is deployed meanwhile.
	Bundle     journey.Bundle
	JourneyID  string
	Version    string
	CustomerID string
	Key        string
	// Trigger is the event that started the run (nil for scheduled and
	// segment-entry runs).
	Trigger *journey.Event
	// EntryID names the run in journey_runs: the trigger event's id, or a
	// marker for scheduled and segment-entry runs.
	EntryID string
	// Customer is the customer as ingest saw them when the run started, so
	// the first step needs no extra read (later steps read them afresh).
	Customer *journey.Customer
	// State is set when the run continues as new.
	State *journey.State
	// Seen holds ids of events already applied, carried across
	// continue-as-new so a redelivered event is not applied twice.
	Seen []string
	// ReorderWindow: events that arrive within it of each other are
	// applied in the order they happened (0: as they arrive).
	ReorderWindow time.Duration `json:",omitempty"`
	// Pending holds events received and not yet applied when the run
	// continued as new in the middle of a step.
	Pending []journey.Event `json:",omitempty"`
	// Resume is set when the run continued as new while a message waited
	// to be sent.
	Resume *SendResume `json:",omitempty"`
	// HeldOut is set when the run is in its journey's holdout (drawn when
	// it starts, changeHoldout): it records what it would have sent
	// instead of sending. It travels across continue-as-new.
	HeldOut bool `json:",omitempty"`
}

// JourneyResult says how the run ended.
type JourneyResult struct {
	Outcome journey.Outcome
	Step    string
	Sent    int
}

// Workflows holds what the workflow code shares across runs on a worker:
// compiled journey definitions, keyed by bundle content. Compiling is
// deterministic, so a cached definition behaves exactly like a fresh one.
type Workflows struct {
	mu    sync.Mutex
	cache map[string]*journey.Journey
	// sendTimeout, when set, bounds one message's Send activity
	// (schedule-to-close) instead of the default.
	sendTimeout time.Duration
}

// Option configures the workflows of a worker.
type Option func(*Workflows)

// WithSendTimeout bounds how long one message may take to go out
// (retries included) before the run asks the policy again. The default is
// the reservation's lifetime plus a minute. A later ask of the same message
// finds the earlier decision and delivery, so a shorter bound never sends a
// message twice.
func WithSendTimeout(d time.Duration) Option {
	return func(w *Workflows) { w.sendTimeout = d }
}

// New returns the workflows of one worker.
func New(opts ...Option) *Workflows {
	w := &Workflows{cache: map[string]*journey.Journey{}}
	for _, o := range opts {
		o(w)
	}
	return w
}

func (w *Workflows) compile(b journey.Bundle) (*journey.Journey, error) {
	key := b.Key()
	w.mu.Lock()
	defer w.mu.Unlock()
	if j, ok := w.cache[key]; ok {
		return j, nil
	}
	j, err := b.Compile()
	if err != nil {
		return nil, err
	}
	if len(w.cache) > 1000 {
		clear(w.cache)
	}
	w.cache[key] = j
	return j, nil
}

// Change ids for workflow.GetVersion. Each names one change to workflow
// code; runs that started before it replay the old branch (see
// docs/versioning.md).
const (
	// changeSendTimeout: the Send activity's schedule-to-close comes from
	// the worker's configuration (WithSendTimeout).
	changeSendTimeout = "send-timeout-configurable"
	// changeClaimEntry: a run's first execution claims its entry's run
	// row, and a second start of an entry whose run is over ends at once
	// (claimEntry). Taken through epoch 3.
	changeClaimEntry = "claim-entry-v1"
	// changeRetriesRunOut: a delivery whose retries ran out (the relay
	// down or throttling for longer than the send may take; Temporal then
	// fails the activity with its last error, not a timeout) asks the
	// policy again, as after a timeout, instead of failing the run. Its
	// own marker, recorded only by runs that get there.
	changeRetriesRunOut = "ask-again-when-retries-run-out-v1"
	// changeSeenOrder: a run continuing as new carries the ids of the
	// newest events it saw, not the alphabetically last (seenList). Its
	// own marker, recorded when a run continues as new.
	changeSeenOrder = "seen-newest-across-continue-as-new-v1"
	// changeReadAfterWaitFor: an event that comes during a wait_for has
	// the customer read again, as a wait that runs out does. Taken
	// through epoch 4; a run that took an earlier epoch records its own
	// marker when it gets an event in a wait_for.
	changeReadAfterWaitFor = "read-customer-after-wait-for-v1"
)

// retriesRanOut reports whether an activity failed because its retries ran
// out in the time it had (schedule-to-close) rather than for good: when
// the next retry would come too late, Temporal fails the activity with its
// last attempt's error and retry state TIMEOUT instead of timing it out.
// Temporal's test environment leaves the state unset; there, a retryable
// error reaching the workflow stands for it. A server always sets the
// state, so an error given up for any other reason (a maximum of attempts,
// a non-retryable type) still fails the step.
func retriesRanOut(err error) bool {
	var acte *temporal.ActivityError
	if !errors.As(err, &acte) {
		return false
	}
	switch acte.RetryState() {
	case enumspb.RETRY_STATE_TIMEOUT:
		return true
	case enumspb.RETRY_STATE_UNSPECIFIED:
		var ae *temporal.ApplicationError
		return errors.As(err, &ae) && !ae.NonRetryable()
	}
	return false
}

// OutcomeSecondStart ends a run that started for an entry whose run had
// already finished (claimEntry): it did nothing.
const OutcomeSecondStart journey.Outcome = "second_start"

// errCustomerGone ends a run whose customer was deleted.
var errCustomerGone = errors.New("customer no longer exists")

// settle is how long a message below high priority waits before its first
// ask of the policy.
const settle = 5 * time.Second

// continueAfter bounds how many actions one run executes before it
// continues as new, keeping history small for long-lived journeys even on
// servers that do not suggest continue-as-new.
const continueAfter = 200

// Journey runs one customer through one journey.
func (w *Workflows) Journey(ctx workflow.Context, in JourneyInput) (JourneyResult, error) {
	log := workflow.GetLogger(ctx)
	def, err := w.compile(in.Bundle)
	if err != nil {
		return JourneyResult{}, temporal.NewNonRetryableApplicationError("compile journey: "+err.Error(), "JourneyInvalid", err)
	}
	r := &run{w: w, ctx: ctx, in: in, def: def, seen: map[string]bool{}, events: workflow.GetSignalChannel(ctx, SignalEvent),
		migrations: workflow.GetSignalChannel(ctx, SignalMigrate)}
	r.takeEpochs()
	for _, id := range in.Seen {
		r.see(id)
	}
	for i := range in.Pending {
		r.pending = append(r.pending, &in.Pending[i])
	}
	if in.Trigger != nil {
		r.see(in.Trigger.ID)
	}
	if in.EntryID != "" {
		r.see(in.EntryID)
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (RunInfo, error) {
		return RunInfo{JourneyID: r.in.JourneyID, Version: r.in.Version, State: r.st}, nil
	}); err != nil {
		return JourneyResult{}, err
	}

	var act journey.Action
	if in.State != nil {
		r.st, act = *in.State, in.State.Current
	} else {
		if owned, err := r.claimEntry(); err != nil {
			return JourneyResult{}, err
		} else if !owned {
			return r.secondStart()
		}
		cust, found := journey.Customer{}, in.Customer != nil
		if found {
			cust = *in.Customer
		} else if cust, found, err = r.loadCustomer(); err != nil {
			return JourneyResult{}, err
		}
		if !found {
			return r.finish(JourneyResult{Outcome: "customer_gone"})
		}
		r.st, act, err = def.Start(r.known(cust), in.Trigger, workflow.Now(ctx))
		if err != nil {
			return r.fail(err)
		}
		if err := r.drawHoldout(); err != nil {
			return JourneyResult{}, err
		}
	}
	for steps := 0; act.Kind != journey.ActDone; steps++ {
		if steps >= continueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return r.continueAsNew()
		}
		var occ journey.Occurrence
		switch act.Kind {
		case journey.ActSleep, journey.ActAwait:
			if len(r.pending) > 0 {
				// An event that arrived while a message waited to be sent
				// (the customer acted meanwhile) counts now.
				occ = r.eventOccurrence(journey.Occurrence{Kind: journey.OccEvent, Event: r.pending[0]})
				r.pending = r.pending[1:]
			} else {
				var cont bool
				occ, cont = r.wait(act.Until)
				if cont {
					return r.continueInStep(nil)
				}
				occ = r.eventOccurrence(occ)
			}
			reload := occ.Kind == journey.OccElapsed
			if !reload && act.Kind == journey.ActAwait && occ.Kind == journey.OccEvent {
				// After a wait_for too (docs/journeys.md): the steps after
				// an answer see what the answer changed.
				reload = r.uses(changeReadAfterWaitFor)
			}
			if reload {
				// Conditions after a wait see the customer as they are now.
				cust, found, err := r.loadCustomer()
				if err != nil {
					return JourneyResult{}, err
				}
				if !found {
					return r.finish(JourneyResult{Outcome: "customer_gone", Step: act.Step})
				}
				r.st.Customer = r.known(cust)
			}
		case journey.ActSend:
			occ, err = r.send(act)
			if errors.Is(err, errContinueAsNew) {
				return r.continueInStep(r.resume)
			}
			if errors.Is(err, errCustomerGone) {
				return r.finish(JourneyResult{Outcome: "customer_gone", Step: act.Step, Sent: r.sent})
			}
			if err != nil {
				return JourneyResult{}, err
			}
		default:
			return r.fail(fmt.Errorf("unknown action %q", act.Kind))
		}
		r.st, act, err = def.Next(r.st, occ, workflow.Now(ctx))
		if err != nil {
			return r.fail(err)
		}
	}
	log.Info("journey finished", "outcome", act.Outcome, "step", act.Step, "sent", r.sent)
	return r.finish(JourneyResult{Outcome: act.Outcome, Step: act.Step, Sent: r.sent})
}

// run is the state of one workflow execution.
type run struct {
	// acts is nil: its methods name the activities to execute.
	acts       *activities.Activities
	w          *Workflows
	migrations workflow.ReceiveChannel
	ctx        workflow.Context
	in         JourneyInput
	def        *journey.Journey
	st         journey.State
	seen       map[string]bool
	// seenOrder holds the seen ids in the order the run saw them (those it
	// was started with first), for the next execution (seenList).
	seenOrder []string
	events    workflow.ReceiveChannel
	sent      int
	// epoch is the epoch the run took (changeEpochs).
	epoch workflow.Version
	// pending holds events that arrived while a message waited (settle,
	// deferral): they are applied once the send step is over, so a later
	// wait_for still sees them.
	pending []*journey.Event
	// buffer holds events waiting out the reorder window (it closes at
	// flushAt); ready holds events to apply next, in order.
	buffer   []held
	flushAt  time.Time
	arrivals int
	ready    []*journey.Event
	// resume is the send step to resume after continuing as new.
	resume *SendResume
}

// localCtx is for the short database activities (load a customer, record
// an outcome): they run in the workflow worker without a round trip
// through the server's activity queue.
func (r *run) localCtx() workflow.Context {
	return workflow.WithLocalActivityOptions(r.ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second, RetryPolicy: dbRetry})
}

var dbRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second}

func (r *run) loadCustomer() (journey.Customer, bool, error) {
	var out activities.LoadCustomerOutput
	err := r.db(r.acts.LoadCustomer, activities.LoadCustomerInput{CustomerID: r.in.CustomerID}, &out)
	if err != nil {
		return journey.Customer{}, false, fmt.Errorf("load customer: %w", err)
	}
	return out.Customer, out.Found, nil
}

// wait blocks until the timer fires or an event is ready to apply,
// whichever is first, and reports it. Events are ready at once, or after
// the run's reorder window in the order they happened. cont is true when
// the run should continue as new before going on.
func (r *run) wait(until time.Time) (occ journey.Occurrence, cont bool) {
	if ev := r.nextReady(); ev != nil {
		return journey.Occurrence{Kind: journey.OccEvent, Event: ev}, false
	}
	timerCtx, cancel := workflow.WithCancel(r.ctx)
	defer cancel()
	timer := workflow.NewTimer(timerCtx, until.Sub(workflow.Now(r.ctx)))
	var flush workflow.Future
	for {
		if r.shouldContinue() {
			return journey.Occurrence{}, true
		}
		elapsed := false
		sel := workflow.NewSelector(r.ctx)
		sel.AddFuture(timer, func(workflow.Future) { elapsed = true })
		sel.AddReceive(r.events, func(c workflow.ReceiveChannel, _ bool) {
			if ev, ok := r.receive(c); ok {
				r.hold(ev)
			}
		})
		sel.AddReceive(r.migrations, func(c workflow.ReceiveChannel, _ bool) {
			var m MigrateSignal
			c.Receive(r.ctx, &m)
			r.migrate(m)
		})
		if len(r.buffer) > 0 {
			if flush == nil {
				flush = workflow.NewTimer(timerCtx, r.flushAt.Sub(workflow.Now(r.ctx)))
			}
			sel.AddFuture(flush, func(workflow.Future) { r.flush(); flush = nil })
		}
		sel.Select(r.ctx)
		if elapsed {
			r.redeployed()
			// Events held when the step's time comes happened before it:
			// they go first.
			r.flush()
			if ev := r.nextReady(); ev != nil {
				return journey.Occurrence{Kind: journey.OccEvent, Event: ev}, false
			}
			return journey.Occurrence{Kind: journey.OccElapsed}, false
		}
		if ev := r.nextReady(); ev != nil {
			return journey.Occurrence{Kind: journey.OccEvent, Event: ev}, false
		}
	}
}

// migrate moves the run to another version when its current step exists
// there with the same kind. The timer in progress keeps running: a wait
// that was edited applies from the next wait on.
func (r *run) migrate(m MigrateSignal) {
	log := workflow.GetLogger(r.ctx)
	def, err := r.w.compile(m.Bundle)
	if err != nil {
		log.Warn("migration refused: new version does not compile", "version", m.Version, "err", err)
		return
	}
	cur := r.st.Current.Step
	target := cur
	if to, ok := m.Steps[cur]; ok {
		target = to
	}
	old, _ := r.def.Step(cur)
	s, ok := def.Step(target)
	if !ok || old == nil || s.Kind != old.Kind {
		log.Warn("migration refused: the current step has no counterpart of the same kind", "step", cur, "target", target, "version", m.Version)
		return
	}
	r.def, r.in.Bundle, r.in.Version = def, m.Bundle, m.Version
	r.st.Current.Step = target
	log.Info("run migrated", "from_step", cur, "to_step", target, "version", m.Version)
}

// receive takes one event off the channel, dropping those already seen and
// those the run's schema never declared.
func (r *run) receive(c workflow.ReceiveChannel) (*journey.Event, bool) {
	var ev journey.Event
	c.Receive(r.ctx, &ev)
	if !r.fresh(ev) {
		return &ev, false
	}
	return r.knownEvent(&ev)
}

// fresh reports whether an event is new to the run, and remembers it.
func (r *run) fresh(ev journey.Event) bool {
	if ev.ID == "" || r.seen[ev.ID] {
		return false
	}
	r.see(ev.ID)
	return true
}

// see remembers an event id as seen.
func (r *run) see(id string) {
	if !r.seen[id] {
		r.seen[id] = true
		r.seenOrder = append(r.seenOrder, id)
	}
}

// send carries out a send step: ask the policy (and deliver when it
// allows) in the Send activity, wait out deferrals on durable timers (a
// goal event still ends the run meanwhile), and ask again. It returns the
// occurrence to report to Next.
func (r *run) send(act journey.Action) (journey.Occurrence, error) {
	info := workflow.GetInfo(r.ctx)
	in := activities.SendInput{Trigger: r.st.Trigger, DecideInput: activities.DecideInput{
		WorkflowID: info.WorkflowExecution.ID, RunID: info.FirstRunID, JourneyID: r.in.JourneyID, Version: r.in.Version,
		StepID: act.Step, CustomerID: r.in.CustomerID, Send: *act.Send, FirstAsked: workflow.Now(r.ctx)}}
	resumed := false
	if res := r.in.Resume; res != nil && res.Step == act.Step && res.Visit == act.Send.Visit {
		// The run continued as new while this message waited: it is the
		// same message, and its staleness counts from its first ask.
		in.FirstAsked, resumed = res.FirstAsked, true
		r.in.Resume = nil
	}
	if r.in.HeldOut {
		return r.wouldSend(in.DecideInput)
	}
	r.resume = &SendResume{Step: act.Step, Visit: act.Send.Visit, FirstAsked: in.FirstAsked}
	r.withReceived(&in)
	sendWithin := activities.ReservationTTL + time.Minute
	if r.uses(changeSendTimeout) && r.w.sendTimeout > 0 {
		sendWithin = r.w.sendTimeout
	}
	ctx := workflow.WithActivityOptions(r.ctx, workflow.ActivityOptions{
		// A send is a few database round trips and one SMTP conversation
		// (whose own timeout is 20s); a worker that died mid-send is
		// noticed after this and the send retried elsewhere.
		StartToCloseTimeout: 30 * time.Second,
		// Past the reservation's lifetime the activity refuses to send; the
		// run then asks the policy again instead of sending late.
		ScheduleToCloseTimeout: sendWithin,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	if p, err := policy.ParsePriority(act.Send.Priority); err == nil && p < policy.High && !resumed {
		// Messages below high priority let the others triggered by the
		// same event ask first, so the slot goes by priority rather than
		// by which workflow happened to run first. A goal meanwhile still
		// ends the run.
		if occ, ended, err := r.waitOrGoal(workflow.Now(r.ctx).Add(settle)); ended || err != nil {
			return occ, err
		}
	}
	for ask := 1; ; ask++ {
		in.Ask = ask
		out, err := r.ask(ctx, in)
		var te *temporal.TimeoutError
		var ae *temporal.ApplicationError
		switch {
		case errors.As(err, &te):
			continue // nothing went out in time: ask again
		case errors.As(err, &ae) && ae.Type() == activities.ErrTypeCustomerGone:
			return journey.Occurrence{}, errCustomerGone
		case retriesRanOut(err) && r.uses(changeRetriesRunOut):
			continue // its retries ran out in the time it had: as a timeout
		case err != nil:
			return journey.Occurrence{}, fmt.Errorf("send: %w", err)
		}
		switch out.Verdict {
		case policy.Allow:
			switch out.Delivery.Status {
			case activities.StatusExpired:
				continue
			case activities.StatusFallback:
				// Push cannot reach the customer: ask again for the
				// next channel.
				in.Send = r.pushFallback(in.Send)
				continue
			}
			if out.Delivery.Status == activities.StatusSent {
				r.sent++
			}
			return r.sendDone(out), nil
		case policy.Defer:
			if occ, ended, err := r.waitOrGoal(out.Until); ended || err != nil {
				return occ, err
			}
		default:
			return r.sendDone(out), nil
		}
	}
}

// waitOrGoal waits until a message may ask again. An event that ends the
// run (a goal) ends the wait too: a message that waits never holds up the
// customer's success. Other events are kept for after the send step. It
// returns errContinueAsNew when the run should continue as new first.
func (r *run) waitOrGoal(until time.Time) (journey.Occurrence, bool, error) {
	for {
		occ, cont := r.wait(until)
		if cont {
			return occ, false, errContinueAsNew
		}
		if occ.Kind == journey.OccElapsed {
			return occ, false, nil
		}
		if st, next, err := r.def.Next(r.st, occ, workflow.Now(r.ctx)); err == nil && next.Kind == journey.ActDone {
			r.st = st
			return occ, true, nil
		}
		r.pending = append(r.pending, occ.Event)
	}
}

func (r *run) fail(err error) (JourneyResult, error) {
	_ = r.record("error: " + err.Error())
	if herr := r.handBack(); herr != nil {
		workflow.GetLogger(r.ctx).Warn("unapplied events not handed back", "err", herr)
	}
	return JourneyResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("journey %s (version %s): %v", r.in.JourneyID, r.in.Version, err), "JourneyError", err)
}

func (r *run) finish(res JourneyResult) (JourneyResult, error) {
	if err := r.record(string(res.Outcome)); err != nil {
		return res, err
	}
	if err := r.handBack(); err != nil {
		return res, err
	}
	return res, nil
}

// claimEntry claims the run row of the run's entry (changeClaimEntry) and
// reports whether this run owns it. Routing records the row before it
// starts the run, and a replica that hangs between the two can make its
// start after the sweeper started the entry's run and that run
// finished: the workflow id is free again, reentry needs Temporal to allow
// a new run under it, and a second run of the same entry starts. The row
// tells: its run is over, or it has another run id.
func (r *run) claimEntry() (bool, error) {
	if r.in.EntryID == "" || !r.uses(changeClaimEntry) {
		return true, nil
	}
	info := workflow.GetInfo(r.ctx)
	runID := info.FirstRunID
	if runID == "" {
		runID = info.WorkflowExecution.RunID
	}
	var owned bool
	err := r.db(r.acts.ClaimEntry, activities.ClaimEntryInput{JourneyID: r.in.JourneyID, EntryID: r.in.EntryID, RunID: runID}, &owned)
	if err != nil {
		return false, fmt.Errorf("claim the entry's run: %w", err)
	}
	return owned, nil
}

// secondStart ends a run that is a second start of its entry: it sends
// nothing and records nothing, since the entry's run did both, and hands
// back to routing any other event that reached it meanwhile.
func (r *run) secondStart() (JourneyResult, error) {
	workflow.GetLogger(r.ctx).Warn("this entry's run has already finished: a late start of it ends without doing anything",
		"entry", r.in.EntryID)
	if err := r.handBack(); err != nil {
		return JourneyResult{}, err
	}
	return JourneyResult{Outcome: OutcomeSecondStart}, nil
}

func (r *run) record(outcome string) error {
	if r.in.EntryID == "" {
		return nil
	}
	return r.db(r.acts.FinishRun, activities.FinishRunInput{JourneyID: r.in.JourneyID, EntryID: r.in.EntryID, Outcome: outcome}, nil)
}

// continueAsNew hands the run to a fresh execution with the same state,
// after applying any events already delivered so none is lost.
func (r *run) continueAsNew() (JourneyResult, error) {
	for {
		ev, ok := r.drain()
		if !ok {
			break
		}
		r.pending = append(r.pending, ev)
	}
	for _, ev := range r.pending {
		st, _, err := r.def.Next(r.st, r.eventOccurrence(journey.Occurrence{Kind: journey.OccEvent, Event: ev}), workflow.Now(r.ctx))
		if err != nil {
			return r.fail(err)
		}
		r.st = st
	}
	r.pending = nil
	next := r.in
	st := r.st
	next.State = &st
	next.Seen = r.seenList()
	return JourneyResult{}, workflow.NewContinueAsNewError(r.ctx, JourneyWorkflow, next)
}

func (r *run) drain() (*journey.Event, bool) {
	for {
		var ev journey.Event
		if !r.events.ReceiveAsync(&ev) {
			return nil, false
		}
		if r.fresh(ev) {
			return &ev, true
		}
	}
}

// continueInStep hands the run to a fresh execution in the middle of its
// current step (a long wait, a long deferral): events received and not
// yet applied travel with it, and a waiting message keeps its first ask.
func (r *run) continueInStep(resume *SendResume) (JourneyResult, error) {
	next := r.in
	st := r.st
	next.State, next.Resume, next.Pending = &st, resume, nil
	for _, ev := range r.unapplied() {
		next.Pending = append(next.Pending, *ev)
	}
	next.Seen = r.seenList()
	workflow.GetLogger(r.ctx).Info("continuing as new in the middle of a step", "step", st.Current.Step, "pending", len(next.Pending))
	return JourneyResult{}, workflow.NewContinueAsNewError(r.ctx, JourneyWorkflow, next)
}

// seenList is the run's seen event ids for the next execution: the newest
// 500, in the order seen. Before changeSeenOrder, the alphabetically last
// 500, which need not be the newest.
func (r *run) seenList() []string {
	if r.uses(changeSeenOrder) {
		return slices.Clone(r.seenOrder[max(0, len(r.seenOrder)-maxSeen):])
	}
	seen := make([]string, 0, len(r.seen))
	//workflowcheck:ignore the ids are sorted below
	for id := range r.seen {
		seen = append(seen, id)
	}
	slices.Sort(seen)
	if len(seen) > maxSeen {
		seen = seen[len(seen)-maxSeen:]
	}
	return seen
}

// maxSeen is how many seen event ids a run carries into its next
// execution.
const maxSeen = 500
