package journey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"
)

// ActionKind is what the shell (a workflow, or the simulator) must do next.
type ActionKind string

// Actions.
const (
	// ActSleep: wait until Action.Until (a durable timer), then report
	// Elapsed. Events still arrive meanwhile (a goal ends the run).
	ActSleep ActionKind = "sleep"
	// ActAwait: wait for an event of type Action.Event, or until
	// Action.Until, whichever comes first.
	ActAwait ActionKind = "await"
	// ActSend: ask the policy and send Action.Send, then report Sent.
	ActSend ActionKind = "send"
	// ActDone: the run is over; Action.Outcome says why.
	ActDone ActionKind = "done"
)

// Outcome is how a run ended.
type Outcome string

// Outcomes.
const (
	OutcomeCompleted     Outcome = "completed"
	OutcomeGoal          Outcome = "goal"
	OutcomeExit          Outcome = "exit"
	OutcomeNotInAudience Outcome = "not_in_audience"
)

// Action is one instruction for the shell.
type Action struct {
	Kind    ActionKind  `json:"kind"`
	Step    string      `json:"step,omitempty"`
	Until   time.Time   `json:"until,omitzero"`
	Event   string      `json:"event,omitempty"`
	Send    *SendAction `json:"send,omitempty"`
	Outcome Outcome     `json:"outcome,omitempty"`
}

// SendAction is a message the run wants to send.
type SendAction struct {
	// Channel is email, push or preferred; Fallback the channels to try
	// after it, in order, when it cannot be used (channel: [push, email]).
	Channel  string   `json:"channel"`
	Fallback []string `json:"fallback,omitempty"`
	Template string   `json:"template"`
	Topic    string   `json:"topic"`
	Priority string   `json:"priority"`
	Purpose  string   `json:"purpose,omitempty"`
	// Visit counts how often the run has entered this step. With the run
	// and step it makes an idempotency key that does not depend on activity
	// attempts.
	Visit int `json:"visit"`
}

// OccurrenceKind is what happened since the last action.
type OccurrenceKind string

// Occurrences.
const (
	OccElapsed OccurrenceKind = "elapsed"
	OccEvent   OccurrenceKind = "event"
	// OccSent: the send step is over; Occurrence.Outcome says how it
	// went.
	OccSent OccurrenceKind = "sent"
	// OccRetrigger: the trigger event arrived again for this run (a keyed
	// journey: the same key). See Next for the rule.
	OccRetrigger OccurrenceKind = "retrigger"
)

// SendOutcome is how a send step went, as outcome("step") sees it.
type SendOutcome string

// Send outcomes.
const (
	// SendSent: the message went out.
	SendSent SendOutcome = "sent"
	// SendSuppressed: the policy refused it (no consent, an opt-out, a
	// duplicate purpose, a bounced address).
	SendSuppressed SendOutcome = "suppressed"
	// SendStale: it could not go out within max_defer and was dropped.
	SendStale SendOutcome = "stale"
	// SendFailed: delivery failed for good (the server refused it).
	SendFailed SendOutcome = "failed"
	// SendNone: the run has not been through the step.
	SendNone SendOutcome = "none"
)

// SendOutcomes lists the outcomes a condition can compare with.
var SendOutcomes = []SendOutcome{SendSent, SendSuppressed, SendStale, SendFailed, SendNone}

// Occurrence is reported to Next by the shell.
type Occurrence struct {
	Kind  OccurrenceKind `json:"kind"`
	Event *Event         `json:"event,omitempty"`
	// Outcome is set for OccSent; older shells leave it empty, which
	// records nothing.
	Outcome SendOutcome `json:"outcome,omitempty"`
}

// State is one customer's run. It is plain data (JSON) so a workflow can
// carry it through continue-as-new.
type State struct {
	Current  Action         `json:"current"`
	Visits   map[string]int `json:"visits,omitempty"`
	Customer Customer       `json:"customer"`
	Trigger  *Event         `json:"trigger,omitempty"`
	// Received holds the last event each wait_for got, by event type.
	Received map[string]*Event `json:"received,omitempty"`
	// Outcomes holds how each send step went, by step id.
	Outcomes map[string]SendOutcome `json:"outcomes,omitempty"`
}

// Done reports whether the run is over.
func (s State) Done() bool { return s.Current.Kind == ActDone }

// maxHops bounds how many steps one call may pass through without stopping
// at an action. Validation forbids loops without waits; this is the
// backstop for waits whose time has already passed.
const maxHops = 1000

// StepError is a step that could not run: an expression failed on the
// customer's data.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %q: %v", e.Step, e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

// ErrLoop is returned when a run passes through too many steps at once.
var ErrLoop = errors.New("journey passed through too many steps without waiting")

// Start begins a run for a customer, triggered by trigger (nil for scheduled
// and segment journeys).
func (j *Journey) Start(c Customer, trigger *Event, now time.Time) (State, Action, error) {
	st := State{Customer: c, Trigger: trigger}
	if j.Audience != nil {
		vars, err := j.vars(st, now)
		if err != nil {
			return st, Action{}, err
		}
		in, err := j.Audience.Bool(vars)
		if err != nil {
			return st, Action{}, fmt.Errorf("audience: %w", err)
		}
		if !in {
			return j.done(st, "", OutcomeNotInAudience)
		}
	}
	return j.enter(st, 0, now)
}

// Next moves a run forward after an occurrence and returns the new state
// and the action now pending. An occurrence the current action does not
// wait for (an unrelated event, a timer that fires early) leaves the run
// where it is and returns the same action.
func (j *Journey) Next(st State, occ Occurrence, now time.Time) (State, Action, error) {
	cur := st.Current
	if cur.Kind == ActDone {
		return st, cur, nil
	}
	i, ok := j.index[cur.Step]
	if !ok {
		return st, cur, fmt.Errorf("run is at step %q, which journey %s (version %s) does not have", cur.Step, j.ID, j.Version)
	}
	s := j.Steps[i]
	switch occ.Kind {
	case OccEvent:
		if occ.Event == nil {
			return st, cur, errors.New("event occurrence without an event")
		}
		if j.Goal != nil && occ.Event.Type == j.Goal.Event {
			return j.done(st, cur.Step, OutcomeGoal)
		}
		if cur.Kind == ActAwait && occ.Event.Type == cur.Event {
			st.Received = maps.Clone(st.Received)
			if st.Received == nil {
				st.Received = map[string]*Event{}
			}
			st.Received[occ.Event.Type] = occ.Event
			return j.enter(st, j.after(i), now)
		}
		return st, cur, nil
	case OccRetrigger:
		if occ.Event == nil {
			return st, cur, errors.New("retrigger occurrence without an event")
		}
		if (j.Goal != nil && occ.Event.Type == j.Goal.Event) || (cur.Kind == ActAwait && occ.Event.Type == cur.Event) {
			// A goal or a wait_for for the trigger's own type takes the
			// event as it would any other.
			return j.Next(st, Occurrence{Kind: OccEvent, Event: occ.Event}, now)
		}
		return j.retrigger(st, occ.Event, now)
	case OccElapsed:
		if now.Before(cur.Until) {
			return st, cur, nil
		}
		switch cur.Kind {
		case ActSleep:
			return j.enter(st, j.after(i), now)
		case ActAwait:
			next := j.after(i)
			if s.WaitFor.OnTimeout != "" {
				next = j.index[s.WaitFor.OnTimeout]
			}
			return j.enter(st, next, now)
		}
		return st, cur, fmt.Errorf("step %q is a %s step; nothing was sleeping", s.ID, s.Kind)
	case OccSent:
		if cur.Kind != ActSend {
			return st, cur, fmt.Errorf("step %q is a %s step; nothing was being sent", s.ID, s.Kind)
		}
		if occ.Outcome != "" {
			st.Outcomes = maps.Clone(st.Outcomes)
			if st.Outcomes == nil {
				st.Outcomes = map[string]SendOutcome{}
			}
			st.Outcomes[s.ID] = occ.Outcome
		}
		return j.enter(st, j.after(i), now)
	}
	return st, cur, fmt.Errorf("unknown occurrence %q", occ.Kind)
}

// retrigger applies a newer trigger event to a run in progress (a new
// expiry date for the same card). The rule, documented in journeys.md:
// the newer event becomes `event` for every step from now on; a wait
// whose time comes from an `until` expression is computed again, and when
// that time has already passed the run moves on at once; nothing already
// done is repeated, and other waits keep their deadlines. An event older
// than the one the run has, or of another type, changes nothing.
func (j *Journey) retrigger(st State, e *Event, now time.Time) (State, Action, error) {
	cur := st.Current
	if e.Type != j.Trigger.Event || (st.Trigger != nil && e.At.Before(st.Trigger.At)) {
		return st, cur, nil
	}
	st.Trigger = e
	if cur.Kind != ActSleep {
		return st, cur, nil
	}
	i, ok := j.index[cur.Step]
	if !ok {
		return st, cur, fmt.Errorf("run is at step %q, which journey %s (version %s) does not have", cur.Step, j.ID, j.Version)
	}
	s := j.Steps[i]
	if s.Wait == nil || s.Wait.Until == nil {
		return st, cur, nil
	}
	v, err := j.vars(st, now)
	if err != nil {
		return st, cur, err
	}
	until, err := j.wakeTime(s, v, st.Customer, now)
	if err != nil {
		return st, cur, &StepError{Step: s.ID, Err: err}
	}
	if !until.After(now) {
		return j.enter(st, j.after(i), now)
	}
	st.Current.Until = until
	return st, st.Current, nil
}

func (j *Journey) after(i int) int {
	if g := j.Steps[i].Goto; g != "" {
		return j.index[g]
	}
	return i + 1
}

func (j *Journey) done(st State, step string, o Outcome) (State, Action, error) {
	st.Current = Action{Kind: ActDone, Step: step, Outcome: o}
	return st, st.Current, nil
}

// enter runs steps from index i until one needs the shell.
func (j *Journey) enter(st State, i int, now time.Time) (State, Action, error) {
	var vars *Vars
	getVars := func() (Vars, error) {
		if vars == nil {
			v, err := j.vars(st, now)
			if err != nil {
				return Vars{}, err
			}
			vars = &v
		}
		return *vars, nil
	}
	copied := false
	for range maxHops {
		if i >= len(j.Steps) {
			return j.done(st, "", OutcomeCompleted)
		}
		s := j.Steps[i]
		if !copied {
			st.Visits = maps.Clone(st.Visits)
			if st.Visits == nil {
				st.Visits = map[string]int{}
			}
			copied = true
		}
		st.Visits[s.ID]++
		switch s.Kind {
		case KindWait:
			v, err := getVars()
			if err != nil {
				return st, st.Current, &StepError{Step: s.ID, Err: err}
			}
			until, err := j.wakeTime(s, v, st.Customer, now)
			if err != nil {
				return st, st.Current, &StepError{Step: s.ID, Err: err}
			}
			if !until.After(now) {
				i = j.after(i)
				continue
			}
			st.Current = Action{Kind: ActSleep, Step: s.ID, Until: until}
			return st, st.Current, nil
		case KindWaitFor:
			st.Current = Action{Kind: ActAwait, Step: s.ID, Event: s.WaitFor.Event, Until: now.Add(s.WaitFor.Timeout)}
			return st, st.Current, nil
		case KindSend:
			send := &SendAction{Channel: s.Send.Channel, Fallback: s.Send.Fallback, Template: s.Send.Template, Topic: j.Topic,
				Priority: j.Priority.String(), Visit: st.Visits[s.ID]}
			if s.Send.Priority != 0 {
				send.Priority = s.Send.Priority.String()
			}
			if s.Send.Purpose != nil {
				v, err := getVars()
				if err != nil {
					return st, st.Current, &StepError{Step: s.ID, Err: err}
				}
				if send.Purpose, err = s.Send.Purpose.String(v); err != nil {
					return st, st.Current, &StepError{Step: s.ID, Err: fmt.Errorf("purpose: %w", err)}
				}
			}
			st.Current = Action{Kind: ActSend, Step: s.ID, Send: send}
			return st, st.Current, nil
		case KindBranch:
			next := i + 1
			for _, c := range s.Branch {
				match := true
				if c.When != nil {
					v, err := getVars()
					if err != nil {
						return st, st.Current, &StepError{Step: s.ID, Err: err}
					}
					if match, err = c.When.Bool(v); err != nil {
						return st, st.Current, &StepError{Step: s.ID, Err: err}
					}
				}
				if match {
					next = j.index[c.Goto]
					break
				}
			}
			i = next
		case KindExit:
			return j.done(st, s.ID, OutcomeExit)
		}
	}
	return st, st.Current, ErrLoop
}

// wakeTime computes when a wait step ends.
func (j *Journey) wakeTime(s *Step, v Vars, c Customer, now time.Time) (time.Time, error) {
	w := s.Wait
	base := now
	switch {
	case w.Duration > 0:
		base = now.Add(w.Duration)
	case w.Until != nil:
		t, err := w.Until.Time(v)
		if err != nil {
			return time.Time{}, fmt.Errorf("until: %w", err)
		}
		base = t
	}
	if w.AtLocal == nil {
		return base, nil
	}
	return w.AtLocal.NextAtOrAfter(base.In(j.CustomerLocation(c))), nil
}

// CustomerLocation is the customer's time zone, or the policy default.
func (j *Journey) CustomerLocation(c Customer) *time.Location {
	if c.Timezone != "" {
		if loc, ok := j.Schema.location(c.Timezone); ok {
			return loc
		}
	}
	return j.Location
}

func (j *Journey) vars(st State, now time.Time) (Vars, error) {
	cv, err := j.Schema.customerVars(st.Customer)
	if err != nil {
		return Vars{}, err
	}
	ev, err := j.Schema.EventVars(st.Trigger)
	if err != nil {
		return Vars{}, err
	}
	rv, err := j.Schema.ReceivedVars(st.Received)
	if err != nil {
		return Vars{}, err
	}
	out := make(map[string]string, len(j.sendSteps)+len(st.Outcomes))
	for _, id := range j.sendSteps {
		out[id] = string(SendNone)
	}
	for id, o := range st.Outcomes {
		out[id] = string(o)
	}
	return Vars{Customer: cv, Event: ev, Now: now, Received: rv, Outcomes: out}, nil
}

// Bundle is everything needed to rebuild a journey definition exactly: it
// travels in workflow input, so a run keeps its definition however the
// files change.
type Bundle struct {
	File       string `json:"file"`
	Journey    []byte `json:"journey"`
	SchemaFile string `json:"schema_file"`
	Schema     []byte `json:"schema"`
	Timezone   string `json:"timezone"`
}

// Bundle returns the journey's bundle.
func (j *Journey) Bundle() Bundle {
	return Bundle{File: j.File, Journey: j.Source, SchemaFile: j.Schema.File, Schema: j.Schema.Source, Timezone: j.Location.String()}
}

// Key identifies a bundle's content, for caching compiled journeys.
func (b Bundle) Key() string {
	h := sha256.New()
	for _, part := range [][]byte{b.Journey, b.Schema, []byte(b.Timezone)} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Compile rebuilds the journey a bundle holds. It is deterministic.
func (b Bundle) Compile() (*Journey, error) {
	schema, errs := parseSchema(b.SchemaFile, b.Schema, false)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	loc, err := LoadLocation(b.Timezone)
	if err != nil {
		return nil, err
	}
	j, errs := parse(b.File, b.Journey, schema, loc, false)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return j, nil
}
