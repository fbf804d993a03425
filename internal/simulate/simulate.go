// Package simulate runs one customer through one journey, or every journey
// at once, in virtual time, applying the real relationship policy between
// them, and reports what would happen: when each step runs, which message
// would go out on which channel, and why any was deferred or suppressed. Nothing is sent and no server is needed;
// it is the same journey.Next and policy.Decide the workflow uses, and
// events reach runs the way production routes them: by the journey's key,
// one run per key, under the journey's reentry rule.
package simulate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lojal/lojal/internal/journey"
	"github.com/lojal/lojal/internal/policy"
	"github.com/lojal/lojal/internal/render"
)

// Options describe one simulation.
type Options struct {
	// Journey is the journey to simulate; Journeys, when set instead,
	// simulates all of them at once for the customer, with one policy
	// (caps, gaps, quiet hours, priorities) between them, as production
	// applies it.
	Journey   *journey.Journey
	Journeys  []*journey.Journey
	Rules     policy.Rules
	Templates *render.Set
	Customer  journey.Customer
	// Events arrive at their At times; they trigger the journey and feed
	// its goal and wait_for steps.
	Events []journey.Event
	// Start is when virtual time starts (default: the first event's time).
	Start time.Time
	// Days bounds the simulation (default 60).
	Days int
	// History is earlier contacts with the customer, for the policy.
	History []policy.Contact
}

// Line is one thing that happened. JSON field names are part of the
// `lojal journeys simulate --json` contract.
type Line struct {
	At time.Time `json:"at"`
	// Journey is the journey the line is about ("" for a line about the
	// whole simulation).
	Journey  string     `json:"journey,omitempty"`
	Step     string     `json:"step"`
	Kind     string     `json:"kind"`
	Key      string     `json:"key,omitempty"`
	Channel  string     `json:"channel,omitempty"`
	Decision string     `json:"decision,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Event    string     `json:"event,omitempty"`
	Template string     `json:"template,omitempty"`
	Locale   string     `json:"locale,omitempty"`
	Subject  string     `json:"subject,omitempty"`
	// Text is the message's text part (email) or body (push).
	Text string `json:"text,omitempty"`
	Note string `json:"note,omitempty"`
	// Facts say why adaptive pressure lowered the caps for this decision.
	Facts string `json:"facts,omitempty"`
}

// Run simulates and returns the timeline. When a run fails, the timeline
// up to the failure is returned with the error, its last line saying
// where and why.
func Run(o Options) ([]Line, error) {
	journeys := o.Journeys
	if o.Journey != nil {
		journeys = []*journey.Journey{o.Journey}
	}
	if len(journeys) == 0 {
		return nil, errors.New("no journey to simulate")
	}
	schema := journeys[0].Schema
	if o.Days <= 0 {
		o.Days = 60
	}
	events := slices.Clone(o.Events)
	slices.SortStableFunc(events, func(a, b journey.Event) int { return a.At.Compare(b.At) })
	for i, e := range events {
		if e.CustomerID != "" && e.CustomerID != o.Customer.ID {
			return nil, fmt.Errorf("event %s is for customer %s, not %s", e.ID, e.CustomerID, o.Customer.ID)
		}
		checked, err := schema.CheckEvent(withCustomer(e, o.Customer.ID))
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		events[i] = checked
	}
	cust, err := schema.CheckCustomer(o.Customer)
	if err != nil {
		return nil, fmt.Errorf("customer: %w", err)
	}
	start := o.Start
	if start.IsZero() {
		if len(events) == 0 {
			return nil, errors.New("no events and no start time: give --start or --events")
		}
		start = events[0].At
	}
	s := &sim{o: o, cust: cust, events: events, now: start, end: start.AddDate(0, 0, o.Days), window: slices.Clone(o.History)}
	for _, j := range journeys {
		s.journeys = append(s.journeys, &flow{j: j, runs: map[string]*run{}})
	}
	s.rel = relationship(cust, journeys[0].CustomerLocation(cust))
	err = s.run()
	return s.lines, err
}

func withCustomer(e journey.Event, id string) journey.Event {
	if e.CustomerID == "" {
		e.CustomerID = id
	}
	return e
}

// flow is one journey in the simulation, with its runs.
type flow struct {
	j    *journey.Journey
	runs map[string]*run
	// scheduled is when a scheduled or segment journey starts, or zero.
	scheduled time.Time
}

// run is one run of a journey: one per key, as in production.
type run struct {
	f       *flow
	key     string
	st      journey.State
	act     journey.Action
	started time.Time
	done    bool
	// heldOut: the customer is in the journey's holdout (journey.HeldOut).
	heldOut bool
	// A send step in progress: the request and when it asks next.
	req     *policy.Request
	askAt   time.Time
	pending []*journey.Event
}

type sim struct {
	o        Options
	cust     journey.Customer
	rel      policy.Relationship
	events   []journey.Event
	next     int
	now      time.Time
	end      time.Time
	window   []policy.Contact
	waiting  []policy.Waiting
	lines    []Line
	journeys []*flow
	// order holds every run, of every journey, in the order they started.
	order []*run
}

// maxSpin bounds how many times one run may wake at the same instant.
const maxSpin = 10000

func (s *sim) emit(l Line) {
	l.At = l.At.UTC()
	if l.Until != nil {
		l.Until = ptr(l.Until.UTC())
	}
	s.lines = append(s.lines, l)
}

// fail records where a run stopped and why, and returns the error.
func (s *sim) fail(r *run, step string, err error) error {
	var se *journey.StepError
	if errors.As(err, &se) {
		step = se.Step
	}
	s.emit(Line{At: s.now, Journey: r.f.j.ID, Step: step, Kind: "error", Key: r.key, Note: err.Error()})
	return err
}

func (s *sim) run() error {
	for _, f := range s.journeys {
		j := f.j
		switch {
		case j.Trigger.Cron != "":
			at := j.Trigger.NextFire(s.now.Add(-time.Second), j.CustomerLocation(s.cust))
			if at.IsZero() {
				s.emit(Line{At: s.now, Journey: j.ID, Kind: "end", Note: fmt.Sprintf("the schedule %q never fires: no date matches it", j.Trigger.Cron)})
				continue
			}
			f.scheduled = maxTime(s.now, at)
		case j.Trigger.SegmentEntry:
			f.scheduled = s.now
		}
	}
	// spun counts one run's wakes at one instant: a loop whose wait ends
	// at once would otherwise go round until memory runs out.
	var spun struct {
		r *run
		n int
	}
	for {
		r, wake := s.nextWake()
		f, fire := s.nextFire()
		if f != nil && (r == nil || !fire.After(wake)) && (s.next >= len(s.events) || fire.Before(s.events[s.next].At)) {
			s.now = maxTime(s.now, fire)
			f.scheduled = time.Time{}
			if err := s.start(f, "", nil); err != nil {
				return err
			}
			continue
		}
		if s.next < len(s.events) && (r == nil || !s.events[s.next].At.After(wake)) {
			e := s.events[s.next]
			s.next++
			if e.At.After(s.end) {
				break
			}
			s.now = maxTime(s.now, e.At)
			if err := s.route(&e); err != nil {
				return err
			}
			continue
		}
		if r == nil {
			break
		}
		if wake.After(s.end) {
			break
		}
		if !wake.After(s.now) && r == spun.r {
			if spun.n++; spun.n > maxSpin {
				err := fmt.Errorf("journey %s goes round a loop without time passing (%d steps at %s): a wait in the loop ends at once "+
					"(a wait until a time that has passed, at_local at that very time) while its sends are held or suppressed; "+
					"give the loop a wait with a duration", r.f.j.ID, spun.n, s.now.UTC().Format(time.RFC3339))
				return s.fail(r, r.act.Step, err)
			}
		} else {
			spun.r, spun.n = r, 0
		}
		s.now = maxTime(s.now, wake)
		if err := s.wake(r); err != nil {
			return err
		}
	}
	if len(s.journeys) == 1 {
		j := s.journeys[0].j
		if !j.Trigger.SegmentEntry && j.Trigger.Cron == "" && len(s.order) == 0 {
			s.emit(Line{At: s.now, Journey: j.ID, Kind: "end", Note: "no " + j.Trigger.Event + " event: the journey never starts"})
			return nil
		}
	}
	for _, r := range s.order {
		if !r.done {
			s.emit(Line{At: s.end, Journey: r.f.j.ID, Kind: "end", Step: r.act.Step, Key: r.key, Note: fmt.Sprintf("simulation stops after %d days", s.o.Days)})
		}
	}
	return nil
}

// nextFire returns the scheduled or segment journey that starts first.
func (s *sim) nextFire() (*flow, time.Time) {
	var best *flow
	for _, f := range s.journeys {
		if !f.scheduled.IsZero() && (best == nil || f.scheduled.Before(best.scheduled)) {
			best = f
		}
	}
	if best == nil {
		return nil, time.Time{}
	}
	return best, best.scheduled
}

// nextWake returns the open run that wakes first, and when.
func (s *sim) nextWake() (*run, time.Time) {
	var best *run
	var at time.Time
	for _, r := range s.order {
		if r.done {
			continue
		}
		w := r.act.Until
		if r.act.Kind == journey.ActSend {
			w = r.askAt
		}
		if best == nil || w.Before(at) {
			best, at = r, w
		}
	}
	return best, at
}

// route delivers an event the way the dispatcher does: to every journey
// that listens for it.
func (s *sim) route(e *journey.Event) error {
	listened := false
	for _, f := range s.journeys {
		if !f.j.Listens(e.Type) {
			continue
		}
		listened = true
		if err := s.routeTo(f, e); err != nil {
			return err
		}
	}
	if !listened {
		line := Line{At: s.now, Kind: "event", Event: e.Type, Note: "event " + e.ID}
		if len(s.journeys) == 1 {
			line.Journey = s.journeys[0].j.ID
			line.Note += ": this journey does not listen for it"
		} else {
			line.Note += ": no journey listens for it"
		}
		s.emit(line)
	}
	return nil
}

// routeTo delivers an event to one journey: to the run of its key,
// starting one for a trigger under the reentry rule.
func (s *sim) routeTo(f *flow, e *journey.Event) error {
	j := f.j
	line := Line{At: s.now, Journey: j.ID, Kind: "event", Event: e.Type, Note: "event " + e.ID}
	vars, err := s.vars(j, e)
	if err != nil {
		return err
	}
	key := ""
	if kx := j.KeyFor[e.Type]; kx != nil {
		if key, err = kx.String(vars); err != nil {
			line.Note += ": skipped, key: " + err.Error()
			s.emit(line)
			return nil
		}
	}
	line.Key = key
	r := f.runs[key]
	open := r != nil && !r.done
	if e.Type != j.Trigger.Event {
		if !open {
			line.Note += ": no run in progress"
			if key != "" {
				line.Note += " for key " + key
			}
			s.emit(line)
			return nil
		}
		s.emit(line)
		return s.deliver(r, e, journey.OccEvent)
	}
	if j.Audience != nil {
		in, err := j.Audience.Bool(vars)
		if err != nil || !in {
			line.Note += ": not in the audience"
			if err != nil {
				line.Note += " (" + err.Error() + ")"
			}
			s.emit(line)
			return nil
		}
	}
	switch {
	case open:
		kind := journey.OccEvent
		if j.Key != nil {
			// A newer trigger for a running keyed journey updates it.
			kind = journey.OccRetrigger
			line.Note += ": updates the run in progress"
		}
		s.emit(line)
		return s.deliver(r, e, kind)
	case r != nil:
		if why := s.refusal(r); why != "" {
			line.Note += ": skipped, " + why
			s.emit(line)
			return nil
		}
	}
	return s.start(f, key, e)
}

// refusal says why the reentry rule refuses a new run after r.
func (s *sim) refusal(r *run) string {
	j := r.f.j
	switch {
	case j.Reentry.Mode == journey.ReentryOnce:
		return "reentry: once, and the customer has been through this journey"
	case j.Reentry.Mode == journey.ReentryAfter && s.now.Sub(r.started) < j.Reentry.After:
		return fmt.Sprintf("reentry: after %s, last run started %s", policy.FormatDuration(j.Reentry.After), r.started.UTC().Format(time.RFC3339))
	}
	return ""
}

func (s *sim) start(f *flow, key string, trigger *journey.Event) error {
	j := f.j
	r := &run{f: f, key: key, started: s.now, heldOut: journey.HeldOut(j.ID, s.cust.ID, j.Holdout)}
	f.runs[key] = r
	s.order = append(s.order, r)
	st, act, err := j.Start(s.cust, trigger, s.now)
	r.st = st
	if err != nil {
		return s.fail(r, j.Steps[0].ID, err)
	}
	note := "run starts (version " + j.Version + ")"
	if r.heldOut {
		note += "; the customer is in the journey's holdout (" + journey.FormatHoldout(j.Holdout) + "): nothing will be sent"
	}
	s.emit(Line{At: s.now, Journey: j.ID, Kind: "start", Step: j.Steps[0].ID, Key: key, Event: eventType(trigger), Note: note})
	return s.advance(r, st, act)
}

// deliver hands an event to a run. A run waiting to send keeps it for
// after the send step, unless it ends the run (a goal).
func (s *sim) deliver(r *run, e *journey.Event, kind journey.OccurrenceKind) error {
	occ := journey.Occurrence{Kind: kind, Event: e}
	if r.act.Kind == journey.ActSend {
		if st, next, err := r.f.j.Next(r.st, occ, s.now); err == nil && next.Kind == journey.ActDone {
			s.dropWaiting(r)
			return s.advance(r, st, next)
		}
		r.pending = append(r.pending, e)
		return nil
	}
	st, act, err := r.f.j.Next(r.st, occ, s.now)
	if err != nil {
		return s.fail(r, r.act.Step, err)
	}
	return s.advance(r, st, act)
}

// wake handles a run's timer: a wait is over, or a message asks again.
func (s *sim) wake(r *run) error {
	if r.act.Kind == journey.ActSend {
		return s.ask(r)
	}
	st, act, err := r.f.j.Next(r.st, journey.Occurrence{Kind: journey.OccElapsed}, s.now)
	if err != nil {
		return s.fail(r, r.act.Step, err)
	}
	return s.advance(r, st, act)
}

// advance records the run's new action and acts on it at once where it
// needs no time to pass.
func (s *sim) advance(r *run, st journey.State, act journey.Action) error {
	j := r.f.j
	for {
		r.st, r.act = st, act
		switch act.Kind {
		case journey.ActDone:
			r.done = true
			if act.Outcome == journey.OutcomeGoal {
				// Reaching a goal is engagement: adaptive pressure
				// restores the caps.
				s.rel.LastEngaged = s.now
			}
			s.emit(Line{At: s.now, Journey: j.ID, Step: act.Step, Kind: "done", Key: r.key, Reason: string(act.Outcome)})
			return nil
		case journey.ActSend:
			r.askAt = s.now
			return nil
		}
		if len(r.pending) > 0 {
			// Events that arrived while a message waited count now, as
			// in the workflow.
			e := r.pending[0]
			r.pending = r.pending[1:]
			kind := journey.OccEvent
			if e.Type == j.Trigger.Event && j.Key != nil {
				kind = journey.OccRetrigger
			}
			var err error
			if st, act, err = j.Next(st, journey.Occurrence{Kind: kind, Event: e}, s.now); err != nil {
				return s.fail(r, r.act.Step, err)
			}
			continue
		}
		kind := "wait"
		if act.Kind == journey.ActAwait {
			kind = "wait_for"
		}
		s.emit(Line{At: s.now, Journey: j.ID, Step: act.Step, Kind: kind, Key: r.key, Until: ptr(act.Until), Event: act.Event})
		return nil
	}
}

// ask puts a run's message to the policy. A held-out run only says what
// it would have sent, and goes on as if it had (as the workflow does).
func (s *sim) ask(r *run) error {
	j := r.f.j
	act := r.act
	if r.heldOut {
		s.emit(Line{At: s.now, Journey: j.ID, Step: act.Step, Kind: "send", Key: r.key, Channel: act.Send.Channel, Decision: "held_out", Reason: "holdout",
			Template: act.Send.Template, Note: "held out (holdout " + journey.FormatHoldout(j.Holdout) + "): would have sent this; nothing is sent or counted"})
		st, next, err := j.Next(r.st, journey.Occurrence{Kind: journey.OccSent, Outcome: journey.SendSent}, s.now)
		if err != nil {
			return s.fail(r, act.Step, err)
		}
		return s.advance(r, st, next)
	}
	prio, err := policy.ParsePriority(act.Send.Priority)
	if err != nil {
		return s.fail(r, act.Step, err)
	}
	key := fmt.Sprintf("%s/%s/%s#%d", j.ID, r.key, act.Step, act.Send.Visit)
	if r.req == nil || r.req.Key != key {
		r.req = &policy.Request{Key: key, Journey: j.ID, Step: act.Step, Channel: act.Send.Channel, Fallback: act.Send.Fallback,
			Topic: act.Send.Topic, Priority: prio, Purpose: act.Send.Purpose, FirstAsked: s.now, Bases: j.Bases}
	}
	d := policy.Decide(s.o.Rules, s.rel, s.window, s.waiting, *r.req, s.now)
	line := Line{At: s.now, Journey: j.ID, Step: act.Step, Kind: "send", Key: r.key, Channel: d.Channel, Decision: string(d.Verdict), Reason: string(d.Reason), Template: act.Send.Template}
	if line.Channel == "" {
		line.Channel = act.Send.Channel
	}
	if d.Detail.CapHalvings > 0 {
		line.Facts = d.Detail.String()
	}
	s.dropWaiting(r)
	outcome := journey.SendSuppressed
	switch d.Verdict {
	case policy.Defer:
		line.Until = ptr(d.Until)
		s.emit(line)
		s.waiting = append(s.waiting, policy.Waiting{Key: key, Priority: prio, Since: r.req.FirstAsked, Due: d.Until, Reason: d.Reason})
		r.askAt = d.Until
		return nil
	case policy.Allow:
		outcome = journey.SendSent
		s.render(j, &line, r.st)
		s.window = append([]policy.Contact{{At: s.now, Channel: d.Channel, Purpose: r.req.Purpose, Key: key, Critical: prio == policy.Critical}}, s.window...)
	case policy.Suppress:
		if d.Reason == policy.ReasonStale {
			outcome = journey.SendStale
		}
	}
	s.emit(line)
	r.req = nil
	st, next, err := j.Next(r.st, journey.Occurrence{Kind: journey.OccSent, Outcome: outcome}, s.now)
	if err != nil {
		return s.fail(r, act.Step, err)
	}
	return s.advance(r, st, next)
}

func (s *sim) dropWaiting(r *run) {
	if r.req != nil {
		s.waiting = slices.DeleteFunc(s.waiting, func(w policy.Waiting) bool { return w.Key == r.req.Key })
	}
}

func (s *sim) vars(j *journey.Journey, e *journey.Event) (journey.Vars, error) {
	cv, err := j.Schema.CustomerVars(s.cust)
	if err != nil {
		return journey.Vars{}, err
	}
	ev, err := j.Schema.EventVars(e)
	if err != nil {
		return journey.Vars{}, err
	}
	return journey.Vars{Customer: cv, Event: ev, Now: s.now}, nil
}

func (s *sim) render(j *journey.Journey, l *Line, st journey.State) {
	if s.o.Templates == nil {
		return
	}
	cv, err := j.Schema.CustomerVars(st.Customer)
	if err != nil {
		l.Note = "render: " + err.Error()
		return
	}
	ev, err := j.Schema.EventVars(st.Trigger)
	if err != nil {
		l.Note = "render: " + err.Error()
		return
	}
	rv, err := j.Schema.ReceivedVars(st.Received)
	if err != nil {
		l.Note = "render: " + err.Error()
		return
	}
	channel := l.Channel
	m, err := s.o.Templates.Render(l.Template, channel, s.cust.Locale, render.Data{Customer: cv, Event: ev, Received: rv,
		Location: j.CustomerLocation(s.cust), Links: render.Links{Unsubscribe: "https://example.invalid/u/…", Preferences: "https://example.invalid/p/…"}})
	if err != nil {
		l.Note = err.Error()
		return
	}
	l.Locale = m.Locale
	l.Subject, l.Text = m.Subject, m.Text
	if channel == policy.Push {
		l.Subject, l.Text = m.Title, m.Body
	}
}

// relationship builds the policy's view of a simulated customer. Push is
// assumed reachable when the customer consents to it.
func relationship(c journey.Customer, loc *time.Location) policy.Relationship {
	return policy.Relationship{
		Location: loc,
		Channels: map[string]policy.ChannelState{
			policy.Email: {Consent: c.Consent[policy.Email], Address: c.Email != ""},
			policy.Push:  {Consent: c.Consent[policy.Push], Address: c.Consent[policy.Push]},
		},
		TopicsOptedOut: c.TopicsOptedOut,
		Preferred:      c.PreferredChannel,
	}
}

func eventType(e *journey.Event) string {
	if e == nil {
		return ""
	}
	return e.Type
}

func ptr(t time.Time) *time.Time { return &t }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
