// Package simulate runs one customer through one journey in virtual time,
// applying the real relationship policy, and reports what would happen:
// when each step runs, which message would go out on which channel, and why
// any was deferred or suppressed. Nothing is sent and no server is needed;
// it is the same journey.Next and policy.Decide the workflow uses.
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
	Journey   *journey.Journey
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
	At       time.Time  `json:"at"`
	Step     string     `json:"step"`
	Kind     string     `json:"kind"`
	Channel  string     `json:"channel,omitempty"`
	Decision string     `json:"decision,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Event    string     `json:"event,omitempty"`
	Template string     `json:"template,omitempty"`
	Locale   string     `json:"locale,omitempty"`
	Subject  string     `json:"subject,omitempty"`
	Note     string     `json:"note,omitempty"`
}

// Run simulates and returns the timeline.
func Run(o Options) ([]Line, error) {
	j := o.Journey
	if o.Days <= 0 {
		o.Days = 60
	}
	events := slices.Clone(o.Events)
	slices.SortStableFunc(events, func(a, b journey.Event) int { return a.At.Compare(b.At) })
	for i, e := range events {
		if e.CustomerID != "" && e.CustomerID != o.Customer.ID {
			return nil, fmt.Errorf("event %s is for customer %s, not %s", e.ID, e.CustomerID, o.Customer.ID)
		}
		checked, err := j.Schema.CheckEvent(withCustomer(e, o.Customer.ID))
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		events[i] = checked
	}
	cust, err := j.Schema.CheckCustomer(o.Customer)
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
	s.rel = relationship(cust, j.CustomerLocation(cust))
	return s.run()
}

func withCustomer(e journey.Event, id string) journey.Event {
	if e.CustomerID == "" {
		e.CustomerID = id
	}
	return e
}

type sim struct {
	o       Options
	cust    journey.Customer
	rel     policy.Relationship
	events  []journey.Event
	next    int
	now     time.Time
	end     time.Time
	window  []policy.Contact
	waiting []policy.Waiting
	lines   []Line
	trigger *journey.Event
}

func (s *sim) emit(l Line) {
	l.At = l.At.UTC()
	if l.Until != nil {
		l.Until = ptr(l.Until.UTC())
	}
	s.lines = append(s.lines, l)
}

// nextEvent returns the next event at or before t, if any.
func (s *sim) nextEvent(t time.Time) (*journey.Event, bool) {
	if s.next < len(s.events) && !s.events[s.next].At.After(t) {
		e := s.events[s.next]
		s.next++
		return &e, true
	}
	return nil, false
}

func (s *sim) run() ([]Line, error) {
	j := s.o.Journey
	begin, ok := s.begin()
	if !ok {
		return s.lines, nil
	}
	s.now = begin
	st, act, err := j.Start(s.cust, s.trigger, s.now)
	if err != nil {
		return s.lines, err
	}
	s.emit(Line{At: s.now, Kind: "start", Step: j.Steps[0].ID, Event: eventType(s.trigger), Note: "run starts (version " + j.Version + ")"})
	for act.Kind != journey.ActDone {
		if s.now.After(s.end) {
			s.emit(Line{At: s.end, Kind: "end", Step: act.Step, Note: fmt.Sprintf("simulation stops after %d days", s.o.Days)})
			return s.lines, nil
		}
		var occ journey.Occurrence
		switch act.Kind {
		case journey.ActSleep, journey.ActAwait:
			kind := "wait"
			if act.Kind == journey.ActAwait {
				kind = "wait_for"
			}
			s.emit(Line{At: s.now, Step: act.Step, Kind: kind, Until: ptr(act.Until), Event: act.Event})
			occ = s.waitUntil(act.Until)
		case journey.ActSend:
			occ, err = s.send(st, act)
			if err != nil {
				return s.lines, err
			}
		}
		st, act, err = j.Next(st, occ, s.now)
		if err != nil {
			return s.lines, err
		}
	}
	s.emit(Line{At: s.now, Step: act.Step, Kind: "done", Reason: string(act.Outcome)})
	return s.lines, nil
}

// begin finds when the run starts: the trigger event, the first schedule
// fire, or at once for segment entry.
func (s *sim) begin() (time.Time, bool) {
	j := s.o.Journey
	switch {
	case j.Trigger.Event != "":
		for s.next < len(s.events) {
			e := s.events[s.next]
			s.next++
			if e.Type == j.Trigger.Event {
				s.trigger = &e
				return e.At, true
			}
			s.emit(Line{At: e.At, Kind: "event", Event: e.Type, Note: "before the trigger; ignored"})
		}
		s.emit(Line{At: s.now, Kind: "end", Note: "no " + j.Trigger.Event + " event: the journey never starts"})
		return time.Time{}, false
	case j.Trigger.Cron != "":
		at := j.Trigger.NextFire(s.now.Add(-time.Second), j.CustomerLocation(s.cust))
		return at, true
	}
	return s.now, true
}

// waitUntil advances to t or to the next event before it.
func (s *sim) waitUntil(t time.Time) journey.Occurrence {
	if e, ok := s.nextEvent(t); ok {
		s.now = maxTime(s.now, e.At)
		s.emit(Line{At: s.now, Kind: "event", Event: e.Type, Note: "event " + e.ID})
		return journey.Occurrence{Kind: journey.OccEvent, Event: e}
	}
	s.now = maxTime(s.now, t)
	return journey.Occurrence{Kind: journey.OccElapsed}
}

func (s *sim) send(st journey.State, act journey.Action) (journey.Occurrence, error) {
	j := s.o.Journey
	prio, err := policy.ParsePriority(act.Send.Priority)
	if err != nil {
		return journey.Occurrence{}, err
	}
	key := fmt.Sprintf("%s/%s#%d", j.ID, act.Step, act.Send.Visit)
	req := policy.Request{Key: key, Journey: j.ID, Step: act.Step, Channel: act.Send.Channel, Topic: act.Send.Topic,
		Priority: prio, Purpose: act.Send.Purpose, FirstAsked: s.now}
	for {
		d := policy.Decide(s.o.Rules, s.rel, s.window, s.waiting, req, s.now)
		line := Line{At: s.now, Step: act.Step, Kind: "send", Channel: d.Channel, Decision: string(d.Verdict), Reason: string(d.Reason), Template: act.Send.Template}
		if line.Channel == "" {
			line.Channel = act.Send.Channel
		}
		s.waiting = slices.DeleteFunc(s.waiting, func(w policy.Waiting) bool { return w.Key == key })
		switch d.Verdict {
		case policy.Allow:
			s.render(&line, st)
			s.emit(line)
			s.window = append(s.window, policy.Contact{At: s.now, Channel: d.Channel, Purpose: req.Purpose, Key: key})
			return journey.Occurrence{Kind: journey.OccSent}, nil
		case policy.Suppress:
			s.emit(line)
			return journey.Occurrence{Kind: journey.OccSent}, nil
		}
		line.Until = ptr(d.Until)
		s.emit(line)
		s.waiting = append(s.waiting, policy.Waiting{Key: key, Priority: prio, Since: req.FirstAsked, Due: d.Until})
		for {
			occ := s.waitUntil(d.Until)
			if occ.Kind == journey.OccElapsed {
				break
			}
			if _, next, err := j.Next(st, occ, s.now); err == nil && next.Kind == journey.ActDone {
				return occ, nil
			}
		}
	}
}

func (s *sim) render(l *Line, st journey.State) {
	if s.o.Templates == nil {
		return
	}
	j := s.o.Journey
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
	channel := l.Channel
	m, err := s.o.Templates.Render(l.Template, channel, s.cust.Locale, render.Data{Customer: cv, Event: ev,
		Location: j.CustomerLocation(s.cust), Links: render.Links{Unsubscribe: "https://example.invalid/u/…", Preferences: "https://example.invalid/p/…"}})
	if err != nil {
		l.Note = err.Error()
		return
	}
	l.Locale = m.Locale
	l.Subject = m.Subject
	if channel == policy.Push {
		l.Subject = m.Title
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
