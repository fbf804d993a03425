// Package journey parses, validates and runs customer journeys.
//
// It is the pure core behind lojal's journeys: it reads journey YAML, the
// customer and event schema and the relationship policy with positions for
// every error, compiles and type-checks CEL conditions against the schema,
// and steps one customer's run forward with Next. It does no I/O and knows
// nothing of Temporal, Postgres or mail; workflows/ and cmd/ drive it.
package journey

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/lojal/lojal/internal/policy"
)

// StepKind is what a step does.
type StepKind string

// Step kinds, exactly one per step.
const (
	KindWait    StepKind = "wait"
	KindWaitFor StepKind = "wait_for"
	KindSend    StepKind = "send"
	KindBranch  StepKind = "branch"
	KindExit    StepKind = "exit"
)

// Reentry modes.
const (
	ReentryOnce   = "once"
	ReentryAlways = "always"
	ReentryAfter  = "after"
)

// Journey is one validated journey definition.
type Journey struct {
	ID    string
	Name  string
	Topic string
	// TopicPos is where the topic is written.
	TopicPos Position
	// Bases are the legal bases a marketing message of the journey may
	// rely on (basis:); BasesPos is where they are written.
	Bases    []policy.Basis
	BasesPos Position
	Priority policy.Priority
	Audience *Expr
	Trigger  Trigger
	// Key, when set, gives one run per (customer, key). KeyFor holds the same
	// expression compiled for each event type the journey listens to, so
	// those events reach the right run.
	Key     *Expr
	KeyFor  map[string]*Expr
	Reentry Reentry
	Goal    *Goal
	Steps   []*Step
	// Holdout is the share of entrants, in basis points (HoldoutScale),
	// kept out of the journey's sends (HeldOut); 0 keeps nobody out.
	Holdout int
	// Outcome, when set, is what the holdout is judged on besides the
	// goal: the customer's event of this type within a window after
	// entering, whether or not the run is still going.
	Outcome *OutcomeEvent
	// Helper names the helper in policy.yaml's conversations.helpers who
	// takes replies to this journey's messages (a customer record's own
	// helper comes first); FromHelper sends its emails with the helper's
	// name as the From display name.
	Helper     string
	FromHelper bool

	File string
	// Version is a content hash of the file: runs keep the version they
	// started with.
	Version string
	Source  []byte
	Schema  *Schema
	// Location is the time zone for customers who have none.
	Location *time.Location

	index map[string]int
	// sendSteps are the ids of the send steps, for outcome().
	sendSteps []string
	// present holds, per step, what is known to be present on entry.
	present []facts
}

// Trigger says what starts a run: exactly one of its fields is set.
type Trigger struct {
	Event        string
	Cron         string
	SegmentEntry bool

	schedule cron.Schedule
}

// NextFire returns the next time a scheduled journey fires after t, in the
// customer's time zone loc.
func (t Trigger) NextFire(after time.Time, loc *time.Location) time.Time {
	if t.schedule == nil {
		return time.Time{}
	}
	return t.schedule.Next(after.In(loc))
}

// Reentry says whether a customer may run the journey again.
type Reentry struct {
	Mode  string
	After time.Duration
}

// Goal ends a run early, at any step, when its event arrives.
type Goal struct{ Event string }

// OutcomeEvent is a journey's declared outcome: an event of type Event
// within Within after a run began counts as the journey working for
// that run (docs/holdouts.md). It is counted, not routed to the run.
type OutcomeEvent struct {
	Event  string
	Within time.Duration
}

// MaxOutcomeWindow bounds an outcome's window: a year.
const MaxOutcomeWindow = 365 * 24 * time.Hour

// Step is one step of a journey.
type Step struct {
	ID   string
	Kind StepKind
	Goto string
	// gotoAt is where Goto is written.
	gotoAt  pos
	Wait    *Wait
	WaitFor *WaitFor
	Send    *Send
	Branch  []Case
	Exit    *Exit
	Line    int
	Col     int
}

// Wait pauses until a time: now+Duration, or Until; either moved forward to
// the next AtLocal wall-clock time in the customer's zone.
type Wait struct {
	Duration time.Duration
	Until    *Expr
	AtLocal  *policy.Clock
}

// WaitFor waits for an event, or jumps to OnTimeout after Timeout.
type WaitFor struct {
	Event     string
	Timeout   time.Duration
	OnTimeout string

	onTimeoutAt pos
}

// Send asks the policy to send a message.
type Send struct {
	// Channel is email, push or preferred. Fallback holds the channels
	// after the first of a list (channel: [push, email]).
	Channel  string
	Fallback []string
	Template string
	Purpose  *Expr
	// Priority overrides the journey's priority when set.
	Priority policy.Priority
	// TemplatePos is where the template's name is written.
	TemplatePos Position
}

// Position is a place in a journey file.
type Position struct{ Line, Col int }

// Case is one branch arm; a nil When always matches.
type Case struct {
	When *Expr
	Goto string

	gotoAt pos
}

// Exit ends the run.
type Exit struct{ Reason string }

var (
	journeyIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	stepIDRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	topicRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	templateRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Version returns the content hash that names a journey file's version.
func Version(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:8])
}

// Parse parses and validates one journey file against a schema. loc is the
// policy's default time zone. Every problem found is returned, not only the
// first.
func Parse(file string, src []byte, schema *Schema, loc *time.Location) (*Journey, ErrorList) {
	return parse(file, src, schema, loc, true)
}

// parse parses a journey. strict adds the checks a newer lojal makes for
// mistakes an older one let through (an expression that can fail at run
// time, a schedule that never fires): validation and deployment make
// them; Bundle.Compile, which rebuilds definitions already running, does
// not, so a stricter release never fails a run in flight.
func parse(file string, src []byte, schema *Schema, loc *time.Location, strict bool) (*Journey, ErrorList) {
	var errs ErrorList
	d := &decoder{file: file, errs: &errs, src: src, strict: strict}
	root, ok := d.parseYAML(src)
	if !ok {
		return nil, errs
	}
	j := &Journey{File: file, Source: src, Version: Version(src), Schema: schema, Location: loc, Priority: policy.Normal,
		Reentry: Reentry{Mode: ReentryOnce}}
	if j.Location == nil {
		j.Location = time.UTC
	}
	var (
		audienceNode, keyNode, stepsNode, holdoutNode, triggerNode *yaml.Node
	)
	d.mapping(root, "journey",
		field{name: "id", required: true, decode: func(_, v *yaml.Node) {
			if j.ID, _ = d.str(v, "id"); j.ID != "" && !journeyIDRE.MatchString(j.ID) {
				d.errorf(v, "id %q: use lower-case letters, digits and dashes (at most 63)", j.ID)
			}
		}},
		field{name: "name", required: true, decode: func(_, v *yaml.Node) { j.Name, _ = d.nonEmpty(v, "name") }},
		field{name: "topic", required: true, decode: func(_, v *yaml.Node) {
			j.TopicPos = Position{v.Line, v.Column}
			if j.Topic, _ = d.str(v, "topic"); !topicRE.MatchString(j.Topic) {
				d.errorf(v, "topic %q: use lower-case letters, digits, - and _", j.Topic)
			}
		}},
		field{name: "basis", decode: func(_, v *yaml.Node) {
			j.BasesPos = Position{v.Line, v.Column}
			j.Bases = d.bases(v)
		}},
		field{name: "priority", decode: func(_, v *yaml.Node) { j.Priority = d.priority(v, "priority") }},
		field{name: "helper", decode: func(_, v *yaml.Node) { j.Helper, _ = d.nonEmpty(v, "helper") }},
		field{name: "from_helper", decode: func(_, v *yaml.Node) { j.FromHelper, _ = d.boolean(v, "from_helper") }},
		field{name: "audience", decode: func(_, v *yaml.Node) { audienceNode = v }},
		field{name: "trigger", required: true, decode: func(_, v *yaml.Node) { triggerNode = v; d.trigger(v, schema, &j.Trigger) }},
		field{name: "key", decode: func(_, v *yaml.Node) { keyNode = v }},
		field{name: "reentry", decode: func(_, v *yaml.Node) { d.reentry(v, &j.Reentry) }},
		field{name: "goal", decode: func(_, v *yaml.Node) {
			g := &Goal{}
			d.mapping(v, "goal", field{name: "event", required: true, decode: func(_, v *yaml.Node) {
				g.Event = d.eventType(v, schema, "goal event")
			}})
			j.Goal = g
		}},
		field{name: "holdout", decode: func(_, v *yaml.Node) { holdoutNode, j.Holdout = v, d.holdout(v) }},
		field{name: "outcome", decode: func(_, v *yaml.Node) { j.Outcome = d.outcome(v, schema) }},
		field{name: "steps", required: true, decode: func(_, v *yaml.Node) { stepsNode = v }},
	)
	// Expressions are compiled once the trigger (and so the type of
	// `event`) is known.
	if audienceNode != nil {
		j.Audience = d.compileExpr(schema, j.Trigger.Event, audienceNode, "audience", cel.BoolType)
	}
	if stepsNode != nil {
		j.Steps = d.steps(stepsNode, schema, j.Trigger.Event)
	}
	if d.strict && keyNode != nil && j.Trigger.Event == "" {
		// Routing keys runs by the trigger event; a schedule or segment
		// journey has none, and its key was ignored.
		d.errorf(keyNode, "key: only a journey started by an event can have a key (its runs are per customer and key); a schedule or segment_entry journey has one run per customer: remove key")
	}
	if d.strict && j.Trigger.SegmentEntry && audienceNode == nil {
		d.errorf(triggerNode, "segment_entry needs an audience: the journey starts for a customer when they enter it (audience: customer.plan == \"home\")")
	}
	if keyNode != nil {
		j.Key = d.compileExpr(schema, j.Trigger.Event, keyNode, "key", cel.StringType)
		if j.Key != nil && j.Trigger.Event != "" {
			j.KeyFor = map[string]*Expr{j.Trigger.Event: j.Key}
			for _, ev := range j.listens() {
				if ev == j.Trigger.Event || schema == nil {
					continue
				}
				if _, ok := schema.Events[ev]; !ok {
					continue
				}
				before := len(errs)
				if e := d.compileExpr(schema, ev, keyNode, fmt.Sprintf("key (for event %s, which this journey waits for)", ev), cel.StringType); e != nil {
					j.KeyFor[ev] = e
				} else if len(errs) > before {
					errs[len(errs)-1].Msg += "; every event a keyed journey waits for must carry the key"
				}
			}
		}
	}
	if len(j.Steps) > 0 {
		d.checkGraph(j)
	}
	if d.strict && j.Holdout > 0 && j.Goal == nil && j.Outcome == nil {
		d.errorf(holdoutNode, "holdout %s: the journey has no goal, so held-out and treated customers have nothing to be compared on: "+
			"add goal: { event: ... } (the event that says the journey worked) or outcome: { event: ..., within: ... }, or remove holdout",
			strings.TrimSpace(holdoutNode.Value))
	}
	if d.strict && len(j.Steps) > 0 {
		// Names need no sound graph; what is present along the steps does.
		before := len(errs)
		d.checkJourneyNames(j)
		if before == 0 && len(errs) == 0 {
			d.checkJourneyPresence(j)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	j.index = make(map[string]int, len(j.Steps))
	for i, s := range j.Steps {
		j.index[s.ID] = i
		if s.Kind == KindSend {
			j.sendSteps = append(j.sendSteps, s.ID)
		}
	}
	j.present = j.stepFacts()
	return j, nil
}

// PresentAt returns the values known to be present when the given step
// runs, as expression paths (customer.advisor_name, received.survey_answered):
// tested with has() in the audience or a branch on every way there since
// the last wait, or, for received events, got on every way there.
func (j *Journey) PresentAt(step string) []string {
	i, ok := j.index[step]
	if !ok || i >= len(j.present) {
		return nil
	}
	return sortedKeys(j.present[i])
}

// ReceivedEvent returns the event type received.<name> stands for when a
// wait_for of this journey waits for it, or "".
func (j *Journey) ReceivedEvent(name string) string { return j.receivedEvent(name) }

// listens returns the event types, other than the trigger, that a run
// reacts to.
func (j *Journey) listens() []string {
	var evs []string
	if j.Goal != nil && j.Goal.Event != "" {
		evs = append(evs, j.Goal.Event)
	}
	for _, s := range j.Steps {
		if s.WaitFor != nil && s.WaitFor.Event != "" {
			evs = append(evs, s.WaitFor.Event)
		}
	}
	return evs
}

// Listens reports whether events of type typ matter to this journey: its
// trigger, its goal, or an event one of its steps waits for.
func (j *Journey) Listens(typ string) bool {
	if j.Trigger.Event == typ {
		return true
	}
	for _, ev := range j.listens() {
		if ev == typ {
			return true
		}
	}
	return false
}

// Step returns the step with the given id.
func (j *Journey) Step(id string) (*Step, bool) {
	i, ok := j.index[id]
	if !ok {
		return nil, false
	}
	return j.Steps[i], true
}

// Templates returns the templates the journey's send steps use, with the
// channels each may be sent on.
func (j *Journey) Templates() map[string][]string {
	out := map[string][]string{}
	for _, s := range j.Steps {
		if s.Send != nil {
			out[s.Send.Template] = append(out[s.Send.Template], s.Send.Channel)
			out[s.Send.Template] = append(out[s.Send.Template], s.Send.Fallback...)
		}
	}
	return out
}

func (d *decoder) priority(v *yaml.Node, what string) policy.Priority {
	s, ok := d.str(v, what)
	if !ok {
		return 0
	}
	p, err := policy.ParsePriority(s)
	if err != nil {
		d.errorf(v, "%s: %v", what, err)
		return 0
	}
	return p
}

func (d *decoder) eventType(v *yaml.Node, schema *Schema, what string) string {
	s, ok := d.nonEmpty(v, what)
	if !ok {
		return ""
	}
	if schema != nil {
		if _, declared := schema.Events[s]; !declared {
			d.errorf(v, "%s %q is not declared in %s%s", what, s, schema.File, suggestName(s, sortedKeys(schema.Events)))
			return ""
		}
	}
	return s
}

func suggestName(got string, names []string) string {
	// A short word is only a typo of a name it mostly shares: sms is not
	// push.
	best, bestDist := "", min(3, max(1, len(got)/2))+1
	for _, n := range names {
		if dist := levenshtein(got, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func (d *decoder) trigger(v *yaml.Node, schema *Schema, t *Trigger) {
	n := 0
	d.mapping(v, "trigger",
		field{name: "event", decode: func(_, v *yaml.Node) { n++; t.Event = d.eventType(v, schema, "trigger event") }},
		field{name: "schedule", decode: func(_, v *yaml.Node) {
			n++
			d.mapping(v, "schedule", field{name: "cron", required: true, decode: func(_, v *yaml.Node) {
				spec, ok := d.nonEmpty(v, "cron")
				if !ok {
					return
				}
				if strings.HasPrefix(strings.TrimSpace(spec), "TZ=") || strings.HasPrefix(strings.TrimSpace(spec), "CRON_TZ=") {
					d.errorf(v, "cron %q: leave out the time zone; schedules run in each customer's own time zone", spec)
					return
				}
				if d.strict && strings.HasPrefix(strings.TrimSpace(spec), "@") {
					d.errorf(v, "cron %q: write five fields, minute hour day-of-month month day-of-week (\"0 9 * * 1\": Mondays at 09:00)", spec)
					return
				}
				sched, err := cron.ParseStandard(spec)
				if err != nil {
					msg := fmt.Sprintf("cron %q: %v", spec, err)
					if f := strings.Fields(spec); len(f) == 5 && strings.Contains(err.Error(), "above maximum (6)") {
						msg += " (day of week: Sunday is 0, Saturday 6)"
					}
					d.errorf(v, "%s", msg)
					return
				}
				// cron gives up after five years without a match: a spec
				// that finds none from a leap year never fires at all.
				if d.strict && sched.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
					d.errorf(v, "cron %q never fires: no date matches its day of month and month (February has at most 29 days; April, June, September and November 30)", spec)
					return
				}
				t.Cron, t.schedule = spec, sched
			}})
		}},
		field{name: "segment_entry", decode: func(_, v *yaml.Node) {
			n++
			if b, ok := d.boolean(v, "segment_entry"); ok && !b {
				d.errorf(v, "segment_entry: false is not a trigger; remove it and set event or schedule")
			}
			t.SegmentEntry = true
		}},
	)
	if v.Kind == yaml.MappingNode && n != 1 {
		d.errorf(v, "trigger must have exactly one of event, schedule or segment_entry (has %d)", n)
	}
}

var reentryAfterRE = regexp.MustCompile(`^after\s+(\S+)$`)

func (d *decoder) reentry(v *yaml.Node, r *Reentry) {
	s, ok := d.str(v, "reentry")
	if !ok {
		return
	}
	switch s {
	case ReentryOnce, ReentryAlways:
		r.Mode = s
		return
	}
	if m := reentryAfterRE.FindStringSubmatch(s); m != nil {
		dur, err := policy.ParseDuration(m[1])
		if err == nil && dur > 0 {
			r.Mode, r.After = ReentryAfter, dur
			return
		}
	}
	d.errorf(v, "reentry %q: want once, always or \"after <duration>\" (after 30d)", s)
}

func (d *decoder) steps(v *yaml.Node, schema *Schema, event string) []*Step {
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, "steps must be a list")
		return nil
	}
	if len(v.Content) == 0 {
		d.errorf(v, "steps must not be empty")
		return nil
	}
	var steps []*Step
	for _, item := range v.Content {
		s := &Step{Line: item.Line, Col: item.Column}
		kinds := 0
		var idNode *yaml.Node
		kind := func(k StepKind, f func(v *yaml.Node)) field {
			return field{name: string(k), decode: func(_, v *yaml.Node) {
				kinds++
				s.Kind = k
				f(v)
			}}
		}
		d.mapping(item, "step",
			field{name: "id", required: true, decode: func(_, v *yaml.Node) {
				idNode = v
				if s.ID, _ = d.str(v, "step id"); s.ID != "" && !stepIDRE.MatchString(s.ID) {
					d.errorf(v, "step id %q: use lower-case letters, digits and dashes", s.ID)
				}
			}},
			field{name: "goto", decode: func(_, v *yaml.Node) { s.Goto, _ = d.nonEmpty(v, "goto"); s.gotoAt = at(v) }},
			kind(KindWait, func(v *yaml.Node) { s.Wait = d.wait(v, schema, event) }),
			kind(KindWaitFor, func(v *yaml.Node) { s.WaitFor = d.waitFor(v, schema) }),
			kind(KindSend, func(v *yaml.Node) { s.Send = d.send(v, schema, event) }),
			kind(KindBranch, func(v *yaml.Node) { s.Branch = d.branch(v, schema, event) }),
			kind(KindExit, func(v *yaml.Node) {
				s.Exit = &Exit{}
				if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					return
				}
				d.mapping(v, "exit", field{name: "reason", decode: func(_, v *yaml.Node) { s.Exit.Reason, _ = d.str(v, "exit reason") }})
			}),
		)
		if item.Kind != yaml.MappingNode {
			continue
		}
		if kinds != 1 {
			d.errorf(item, "step %q must have exactly one of wait, wait_for, send, branch or exit (has %d)", s.ID, kinds)
		}
		if s.Goto != "" && (s.Kind == KindBranch || s.Kind == KindExit) {
			d.errorf(item, "step %q: goto does not apply to %s steps", s.ID, s.Kind)
		}
		if idNode != nil {
			steps = append(steps, s)
		}
	}
	return steps
}

func (d *decoder) wait(v *yaml.Node, schema *Schema, event string) *Wait {
	w := &Wait{}
	var durNode, untilNode *yaml.Node
	d.mapping(v, "wait",
		field{name: "duration", decode: func(_, v *yaml.Node) {
			durNode = v
			var ok bool
			if w.Duration, ok = d.duration(v, "wait duration"); ok && w.Duration <= 0 {
				d.errorf(v, "wait duration must be longer than zero")
			}
		}},
		field{name: "until", decode: func(_, v *yaml.Node) {
			untilNode = v
			w.Until = d.compileExpr(schema, event, v, "wait until", cel.TimestampType)
		}},
		field{name: "at_local", decode: func(_, v *yaml.Node) {
			if c, ok := d.clock(v, "at_local"); ok {
				w.AtLocal = &c
			}
		}},
	)
	if durNode != nil && untilNode != nil {
		d.errorf(untilNode, "wait: use duration or until, not both")
	}
	if v.Kind == yaml.MappingNode && durNode == nil && untilNode == nil && w.AtLocal == nil {
		d.errorf(v, "wait needs duration, until or at_local")
	}
	return w
}

func (d *decoder) waitFor(v *yaml.Node, schema *Schema) *WaitFor {
	w := &WaitFor{}
	d.mapping(v, "wait_for",
		field{name: "event", required: true, decode: func(_, v *yaml.Node) { w.Event = d.eventType(v, schema, "wait_for event") }},
		field{name: "timeout", required: true, decode: func(_, v *yaml.Node) {
			var ok bool
			if w.Timeout, ok = d.duration(v, "timeout"); ok && w.Timeout <= 0 {
				d.errorf(v, "timeout must be longer than zero")
			}
		}},
		field{name: "on_timeout", decode: func(_, v *yaml.Node) { w.OnTimeout, _ = d.nonEmpty(v, "on_timeout"); w.onTimeoutAt = at(v) }},
	)
	return w
}

func (d *decoder) send(v *yaml.Node, schema *Schema, event string) *Send {
	s := &Send{}
	d.mapping(v, "send",
		field{name: "channel", required: true, decode: func(_, v *yaml.Node) { d.channels(v, s) }},
		field{name: "template", required: true, decode: func(_, v *yaml.Node) {
			s.TemplatePos = Position{v.Line, v.Column}
			if s.Template, _ = d.str(v, "template"); !templateRE.MatchString(s.Template) {
				d.errorf(v, "template %q: use lower-case letters, digits, - and _", s.Template)
			}
		}},
		field{name: "purpose", decode: func(_, v *yaml.Node) {
			s.Purpose = d.compileExpr(schema, event, v, "purpose", cel.StringType)
		}},
		field{name: "priority", decode: func(_, v *yaml.Node) { s.Priority = d.priority(v, "priority") }},
	)
	return s
}

// channels decodes a send's channel: one of email, push or preferred, or a
// list of email and push to try in order.
func (d *decoder) channels(v *yaml.Node, s *Send) {
	if v.Kind != yaml.SequenceNode {
		s.Channel, _ = d.str(v, "channel")
		switch s.Channel {
		case policy.Email, policy.Push, policy.Preferred:
		case "":
		default:
			d.errorf(v, "channel %q: want email, push or preferred, or a list to try in order ([push, email])%s",
				s.Channel, suggestName(s.Channel, []string{policy.Email, policy.Push, policy.Preferred}))
		}
		return
	}
	if len(v.Content) == 0 {
		d.errorf(v, "channel: the list is empty; name email, push or both ([push, email])")
		return
	}
	var chain []string
	for _, item := range v.Content {
		ch, ok := d.str(item, "channel")
		if !ok {
			continue
		}
		switch {
		case ch == policy.Preferred:
			d.errorf(item, "channel: preferred already means the customer's channel, then the other; use it alone, not in a list")
		case ch != policy.Email && ch != policy.Push:
			d.errorf(item, "channel %q: a channel list holds email and push%s", ch, suggestName(ch, []string{policy.Email, policy.Push}))
		case slices.Contains(chain, ch):
			d.errorf(item, "channel %s is in the list twice", ch)
		default:
			chain = append(chain, ch)
		}
	}
	if len(chain) > 0 {
		s.Channel, s.Fallback = chain[0], chain[1:]
	}
}

func (d *decoder) branch(v *yaml.Node, schema *Schema, event string) []Case {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		d.errorf(v, "branch must be a non-empty list of {when, goto}")
		return nil
	}
	var cases []Case
	for i, item := range v.Content {
		var c Case
		var whenNode *yaml.Node
		d.mapping(item, "branch case",
			field{name: "when", decode: func(_, v *yaml.Node) {
				whenNode = v
				c.When = d.compileExpr(schema, event, v, "when", cel.BoolType)
			}},
			field{name: "goto", required: true, decode: func(_, v *yaml.Node) { c.Goto, _ = d.nonEmpty(v, "goto"); c.gotoAt = at(v) }},
		)
		if whenNode == nil && i < len(v.Content)-1 && item.Kind == yaml.MappingNode {
			d.errorf(item, "branch case without when always matches, so the cases after it can never run; move it last")
		}
		cases = append(cases, c)
	}
	return cases
}

// next returns the indexes a step can continue to; len(Steps) means the run
// completes.
func (j *Journey) next(i int) []int {
	s := j.Steps[i]
	after := i + 1
	if s.Goto != "" {
		after = j.index[s.Goto]
	}
	switch s.Kind {
	case KindExit:
		return nil
	case KindBranch:
		var out []int
		for _, c := range s.Branch {
			out = append(out, j.index[c.Goto])
		}
		if last := s.Branch[len(s.Branch)-1]; last.When != nil {
			out = append(out, i+1)
		}
		return out
	case KindWaitFor:
		timeout := after
		if s.WaitFor.OnTimeout != "" {
			timeout = j.index[s.WaitFor.OnTimeout]
		}
		return []int{after, timeout}
	}
	return []int{after}
}

// checkGraph checks step ids, goto targets, reachability and loops.
func (d *decoder) checkGraph(j *Journey) {
	before := len(*d.errs)
	j.index = make(map[string]int, len(j.Steps))
	at := func(s *Step) *yaml.Node { return &yaml.Node{Line: s.Line, Column: s.Col} }
	for i, s := range j.Steps {
		if prev, dup := j.index[s.ID]; dup {
			d.errorf(at(s), "duplicate step id %q (first at line %d)", s.ID, j.Steps[prev].Line)
			continue
		}
		j.index[s.ID] = i
	}
	target := func(s *Step, id, what string, p pos) {
		if _, ok := j.index[id]; !ok {
			d.errorf(p.node(), "step %q: %s %q names no step%s", s.ID, what, id, suggestName(id, sortedKeys(j.index)))
		}
	}
	for _, s := range j.Steps {
		if s.Goto != "" {
			target(s, s.Goto, "goto", s.gotoAt)
		}
		for _, c := range s.Branch {
			target(s, c.Goto, "goto", c.gotoAt)
		}
		if s.WaitFor != nil && s.WaitFor.OnTimeout != "" {
			target(s, s.WaitFor.OnTimeout, "on_timeout", s.WaitFor.onTimeoutAt)
		}
	}
	if len(*d.errs) > before {
		return // reachability is meaningless with dangling references
	}
	n := len(j.Steps)
	seen := make([]bool, n+1)
	queue := []int{0}
	seen[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, k := range j.next(i) {
			if !seen[k] {
				seen[k] = true
				if k < n {
					queue = append(queue, k)
				}
			}
		}
	}
	for i, s := range j.Steps {
		if !seen[i] {
			d.errorf(at(s), "step %q is unreachable: no step leads to it", s.ID)
		}
	}
	// A loop made only of sends, branches and gotos would spin (or send)
	// without ever waiting; waits break loops. A wait until a time does
	// not when it is its only wait: once that time has passed (it does
	// not move on), it ends at once every time round.
	isWait := func(s *Step) bool { return s.Kind == KindWait || s.Kind == KindWaitFor }
	if k, ids := j.loop(isWait); ids != nil {
		d.errorf(at(j.Steps[k]), "steps %s form a loop with no wait in it", strings.Join(ids, " -> "))
		return
	}
	takesTime := func(s *Step) bool {
		// at_local after an until is the first such time after it, which
		// has passed too when the until has.
		return s.Kind == KindWaitFor || (s.Kind == KindWait && s.Wait != nil && (s.Wait.Duration > 0 || (s.Wait.AtLocal != nil && s.Wait.Until == nil)))
	}
	// Newer than the check above: strict only, so a run in flight whose
	// definition has such a loop still compiles.
	if k, ids := j.loop(takesTime); d.strict && ids != nil {
		d.errorf(at(j.Steps[k]), "steps %s form a loop whose only wait (until) may end at once: once its time has passed, "+
			"the run goes round without waiting; add a wait with a duration or at_local, or a wait_for, to the loop", strings.Join(ids, " -> "))
	}
}

// loop finds a loop among the steps that has no step breaks says breaks
// it, and returns the step it closes on and the ids round it (nil: none).
func (j *Journey) loop(breaks func(*Step) bool) (int, []string) {
	n := len(j.Steps)
	const (
		white = iota
		grey
		black
	)
	color := make([]int, n)
	var stack []int
	var visit func(i int) (int, []string)
	visit = func(i int) (int, []string) {
		color[i] = grey
		stack = append(stack, i)
		for _, k := range j.next(i) {
			if k >= n || breaks(j.Steps[k]) {
				continue
			}
			if color[k] == grey {
				var ids []string
				for p := len(stack) - 1; p >= 0; p-- {
					ids = append([]string{j.Steps[stack[p]].ID}, ids...)
					if stack[p] == k {
						break
					}
				}
				return k, append(ids, j.Steps[k].ID)
			}
			if color[k] == white {
				if at, ids := visit(k); ids != nil {
					return at, ids
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return 0, nil
	}
	for i, s := range j.Steps {
		if color[i] == white && !breaks(s) {
			if at, ids := visit(i); ids != nil {
				return at, ids
			}
		}
	}
	return 0, nil
}
